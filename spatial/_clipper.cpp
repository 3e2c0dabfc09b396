// Pairwise polygon intersections with Clipper2, for spatial.clip (loaded through ctypes).
//
// Why: GEOS's OverlayNG builds a full topology graph per pair and costs ~30 us for two
// polygons of ~100 vertices; Clipper2's Vatti sweep on integer coordinates, after a clip to
// the pair's common box, does the same pair in ~12 us, exactly (integer arithmetic, no
// robustness fallbacks). The batch runs without the GIL (ctypes releases it), so Python
// threads split a batch across cores.
//
// Coordinates are int64 on a fixed grid (spatial.clip scales degrees by 1e9). Polygons come
// as rings (each without its closing vertex): xy[2 * v], xy[2 * v + 1] for v in
// ring_start[r] .. ring_start[r + 1], rings of geometry g in geom_ring_start[g] ..
// geom_ring_start[g + 1]. The fill rule is even-odd: in a valid (Multi)Polygon rings never
// cross and parts never overlap, so a point is inside when an odd number of rings hold it,
// whatever their orientation (GEOS does not orient holes against exteriors).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <new>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clipper2/clipper.h"  // Clipper64, PolyTree64

using namespace Clipper2Lib;

namespace {

struct Batch {
  std::vector<int64_t> xy;             // 2 per vertex
  std::vector<int64_t> ring_start{0};  // n_rings + 1
  std::vector<int64_t> ring_polygon;   // n_rings: the polygon each ring belongs to
  std::vector<int64_t> polygon_pair;   // n_polygons: the pair each polygon answers
};

Paths64 read_geom(const int64_t* xy, const int64_t* ring_start, const int64_t* geom_ring_start,
                  int64_t g) {
  Paths64 out;
  out.reserve(static_cast<size_t>(geom_ring_start[g + 1] - geom_ring_start[g]));
  for (int64_t r = geom_ring_start[g]; r < geom_ring_start[g + 1]; ++r) {
    Path64 ring;
    ring.reserve(static_cast<size_t>(ring_start[r + 1] - ring_start[r]));
    for (int64_t v = ring_start[r]; v < ring_start[r + 1]; ++v)
      ring.emplace_back(xy[2 * v], xy[2 * v + 1]);
    out.push_back(std::move(ring));
  }
  return out;
}

void add_ring(Batch& batch, const Path64& path, int64_t polygon) {
  for (const Point64& p : path) {
    batch.xy.push_back(p.x);
    batch.xy.push_back(p.y);
  }
  batch.ring_start.push_back(static_cast<int64_t>(batch.xy.size() / 2));
  batch.ring_polygon.push_back(polygon);
}

// An outer ring and its holes make one polygon; islands inside the holes are polygons too.
void add_polygons(Batch& batch, const PolyPath64& outer, int64_t pair) {
  const int64_t polygon = static_cast<int64_t>(batch.polygon_pair.size());
  batch.polygon_pair.push_back(pair);
  add_ring(batch, outer.Polygon(), polygon);
  for (const auto& hole : outer) add_ring(batch, hole->Polygon(), polygon);
  for (const auto& hole : outer)
    for (const auto& island : *hole) add_polygons(batch, *island, pair);
}

// --- market - union(territories), in strips -------------------------------------------------
//
// One Vatti sweep costs about (vertices) x (edges crossing a scan line). Cut into strips
// across the scan lines, each strip's sweep meets a fraction of those edges, so the strips
// together cost a fraction of one sweep of the whole, and they run on every core. The pieces
// are then joined back along the seams by matching their edges there, exactly: each point
// where an edge crosses a seam is computed once, the same for the strips on both sides.

using i128 = __int128;

struct Ring {
  Path64 path;
  int64_t min_x, max_x;
  bool subject;
};

// A point's coordinate across a line (x for a line x = c, y for y = c), and along it.
inline int64_t across(const Point64& p, bool on_y) { return on_y ? p.y : p.x; }
inline int64_t along(const Point64& p, bool on_y) { return on_y ? p.x : p.y; }

// Where the segment p-q crosses the line x = c (y = c when on_y), p and q strictly either
// side, rounded to the nearest grid point: from the endpoints in one order whichever way the
// segment runs, in integers, so that both strips of a seam get the very same point.
Point64 crossing(const Point64& p, const Point64& q, int64_t c, bool on_y) {
  const bool p_first = across(p, on_y) < across(q, on_y);
  const Point64& a = p_first ? p : q;
  const Point64& b = p_first ? q : p;
  const i128 num = static_cast<i128>(c - across(a, on_y)) * (along(b, on_y) - along(a, on_y));
  const i128 den = across(b, on_y) - across(a, on_y);  // > 0
  i128 step = num / den;
  const i128 rest = num % den;
  if (2 * (rest < 0 ? -rest : rest) >= den) step += num < 0 ? -1 : 1;
  const int64_t at = along(a, on_y) + static_cast<int64_t>(step);
  return on_y ? Point64(at, c) : Point64(c, at);
}

// Sutherland-Hodgman against one line x = c (y = c when on_y): the ring's part on the
// `greater` side of it (x >= c) or the other (x <= c), every vertex kept as it is (Clipper2's
// RectClip drops the vertices in the middle of a straight run, which on lon/lat rings with
// geodesic edges changes the area: a parallel's vertices hold its edge to the parallel).
// Where the ring leaves and comes back, the part is joined along the line by edges there and
// back again, which the fill (NonZero or EvenOdd) ignores.
void clip_side(const Path64& in, Path64& out, int64_t c, bool on_y, bool greater) {
  out.clear();
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    const Point64& cur = in[i];
    const Point64& nxt = in[i + 1 == n ? 0 : i + 1];
    const bool cur_in = greater ? across(cur, on_y) >= c : across(cur, on_y) <= c;
    const bool nxt_in = greater ? across(nxt, on_y) >= c : across(nxt, on_y) <= c;
    if (cur_in) out.push_back(cur);
    if (cur_in != nxt_in) {
      const Point64 at = crossing(cur, nxt, c, on_y);
      if (out.empty() || !(out.back() == at)) out.push_back(at);
    }
  }
}

// The ring's part within the strip lo < x < hi (no lo when !has_lo, no hi when !has_hi), in
// one pass: where an edge crosses both lines, both crossings come from the edge's own ends.
// (Cutting at lo and then at hi took the second from the first, rounded: a grid step off the
// point the next strip computes from the ends, and the seams no longer matched there.) No
// vertex lies on lo or hi (seams are chosen so).
void clip_strip(const Path64& in, Path64& out, int64_t lo, bool has_lo, int64_t hi,
                bool has_hi) {
  out.clear();
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    const Point64& cur = in[i];
    const Point64& nxt = in[i + 1 == n ? 0 : i + 1];
    if ((!has_lo || cur.x > lo) && (!has_hi || cur.x < hi)) out.push_back(cur);
    const bool at_lo = has_lo && ((cur.x < lo) != (nxt.x < lo));
    const bool at_hi = has_hi && ((cur.x > hi) != (nxt.x > hi));
    // In the order the edge meets them: lo first when it runs east.
    if (at_lo && (!at_hi || cur.x < nxt.x)) out.push_back(crossing(cur, nxt, lo, false));
    if (at_hi) out.push_back(crossing(cur, nxt, hi, false));
    if (at_lo && at_hi && cur.x > nxt.x) out.push_back(crossing(cur, nxt, lo, false));
  }
}

// The rings cut to the box (its edges inclusive), rings left with no area dropped.
Paths64 clip_to_box(const Paths64& rings, const Rect64& box) {
  Paths64 out;
  Path64 a, b;
  for (const Path64& ring : rings) {
    a = ring;
    clip_side(a, b, box.left, false, true);
    clip_side(b, a, box.right, false, false);
    clip_side(a, b, box.top, true, true);
    clip_side(b, a, box.bottom, true, false);
    if (a.size() >= 3) out.push_back(a);
  }
  return out;
}

template <typename Points>
i128 twice_area(const Points& ring) {
  i128 sum = 0;
  for (size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++)
    sum += static_cast<i128>(ring[j].x) * ring[i].y - static_cast<i128>(ring[i].x) * ring[j].y;
  return sum;
}

// The rings onto the grid (closing points dropped), oriented by their signs: exteriors with a
// positive area, holes negative. The x of every vertex is kept too (for the seams).
void read_rings(const double* xy, const int64_t* ring_start, const int64_t* sign,
                int64_t n_rings, int64_t n_subject_rings, double grid, std::vector<Ring>& out,
                std::vector<int64_t>& xs) {
  out.reserve(static_cast<size_t>(n_rings));
  for (int64_t r = 0; r < n_rings; ++r) {
    Ring ring{{}, INT64_MAX, INT64_MIN, r < n_subject_rings};
    ring.path.reserve(static_cast<size_t>(ring_start[r + 1] - ring_start[r]));
    for (int64_t v = ring_start[r]; v + 1 < ring_start[r + 1]; ++v) {
      const Point64 p(static_cast<int64_t>(std::nearbyint(xy[2 * v] * grid)),
                      static_cast<int64_t>(std::nearbyint(xy[2 * v + 1] * grid)));
      if (!ring.path.empty() && ring.path.back() == p) continue;  // a repeated point
      ring.path.push_back(p);
      ring.min_x = std::min(ring.min_x, p.x);
      ring.max_x = std::max(ring.max_x, p.x);
      xs.push_back(p.x);
    }
    if (ring.path.size() < 3) continue;
    const i128 area = twice_area(ring.path);
    if (area == 0) continue;
    if ((area > 0) != (sign[r] > 0)) std::reverse(ring.path.begin(), ring.path.end());
    out.push_back(std::move(ring));
  }
}

// Seams at about the quantiles of x (from a sample), strictly increasing, each moved east
// until no vertex lies within SEAM_MARGIN of it. Not merely off the vertices: a seam one grid
// step from a vertex would cut the shapes meeting there into slivers a step wide, which the
// sweep rounds away (two white spaces touching at a corner came back as one).
constexpr int64_t SEAM_MARGIN = 1024;  // grid steps: 1e-6 degree, ~0.1 m

std::vector<int64_t> choose_seams(const std::vector<int64_t>& xs, int64_t strips) {
  std::vector<int64_t> seams;
  if (strips <= 1 || xs.empty()) return seams;
  std::vector<int64_t> sample;
  const size_t step = std::max<size_t>(1, xs.size() / 4096);
  for (size_t i = 0; i < xs.size(); i += step) sample.push_back(xs[i]);
  std::sort(sample.begin(), sample.end());
  for (int64_t k = 1; k < strips; ++k) {
    const size_t at = sample.size() * static_cast<size_t>(k) / static_cast<size_t>(strips);
    const int64_t c = sample[at] + SEAM_MARGIN + 1;
    if (seams.empty() || c > seams.back()) seams.push_back(c);
  }
  // Mostly one pass finds every seam clear, or moves the few near a vertex clear of it. Where
  // vertices crowd (thousands within a few grid steps' margins), stepping past them one
  // margin at a time would rescan every vertex each step: then the seams step along the
  // sorted vertices instead, O(n log n) whatever the input.
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<char> near(seams.size(), 0);
    bool moved = false;
    for (int64_t x : xs) {
      const auto at = std::lower_bound(seams.begin(), seams.end(), x - SEAM_MARGIN);
      if (at != seams.end() && *at <= x + SEAM_MARGIN)
        near[static_cast<size_t>(at - seams.begin())] = 1;
    }
    std::vector<int64_t> next;
    for (size_t s = 0; s < seams.size(); ++s) {
      const int64_t c = seams[s] + (near[s] ? SEAM_MARGIN + 1 : 0);
      moved = moved || near[s];
      if (next.empty() || c > next.back()) next.push_back(c);
    }
    seams.swap(next);
    if (!moved) return seams;
  }
  std::vector<int64_t> sorted(xs);
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> clear;
  for (int64_t c : seams) {
    if (!clear.empty() && c <= clear.back()) c = clear.back() + 1;
    // The first vertex that could be within the margin; past each one met, the seam moves on.
    for (auto at = std::lower_bound(sorted.begin(), sorted.end(), c - SEAM_MARGIN);
         at != sorted.end() && *at <= c + SEAM_MARGIN; ++at)
      c = *at + SEAM_MARGIN + 1;
    clear.push_back(c);
  }
  return clear;
}

using Piece = std::vector<Path64>;  // an outer ring, then its holes

void collect_pieces(const PolyPath64& outer, std::vector<Piece>& out) {
  Piece piece{outer.Polygon()};
  for (const auto& hole : outer) piece.push_back(hole->Polygon());
  out.push_back(std::move(piece));
  for (const auto& hole : outer)
    for (const auto& island : *hole) collect_pieces(*island, out);
}

// The difference within one strip, lo < x < hi (the first strip has no lo, the last no hi).
std::vector<Piece> strip_difference(const std::vector<Ring>& rings, int64_t lo, int64_t hi,
                                    bool first, bool last) {
  Paths64 subject, clip;
  Path64 a;
  for (const Ring& ring : rings) {
    if ((!first && ring.max_x < lo) || (!last && ring.min_x > hi)) continue;
    const bool cut_lo = !first && ring.min_x < lo, cut_hi = !last && ring.max_x > hi;
    if (cut_lo || cut_hi) {
      clip_strip(ring.path, a, lo, cut_lo, hi, cut_hi);
      if (a.size() >= 3) (ring.subject ? subject : clip).push_back(a);
    } else {
      (ring.subject ? subject : clip).push_back(ring.path);
    }
  }
  std::vector<Piece> pieces;
  if (subject.empty()) return pieces;
  Clipper64 clipper;
  clipper.AddSubject(subject);
  clipper.AddClip(clip);
  PolyTree64 tree;
  if (!clipper.Execute(ClipType::Difference, FillRule::NonZero, tree)) throw std::bad_alloc();
  for (const auto& outer : tree) collect_pieces(*outer, pieces);
  return pieces;
}

// Drops the points where an edge of the input crossed a seam and nothing else happened: such a
// point lies on the seam, between neighbours either side of it, within 2 grid steps of the
// line joining them (it was rounded from that line). What is left is the input's edge again:
// the answer does not depend on where the seams fell (neither its vertices nor its geodesic
// area, for which a point on a straight lon/lat line is not on the edge's geodesic).
void drop_seam_points(Path64& ring, const std::vector<int64_t>& seams) {
  const size_t n = ring.size();
  if (seams.empty() || n < 4) return;
  Path64 out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const Point64& v = ring[i];
    if (std::binary_search(seams.begin(), seams.end(), v.x)) {
      const Point64& p = out.empty() ? ring[n - 1] : out.back();
      const Point64& q = ring[i + 1 == n ? 0 : i + 1];
      if ((p.x < v.x && v.x < q.x) || (q.x < v.x && v.x < p.x)) {
        const i128 dx = q.x - p.x, dy = q.y - p.y;
        const i128 cross = dx * (v.y - p.y) - dy * (v.x - p.x);
        const long double length = std::sqrt(static_cast<long double>(dx) * dx +
                                              static_cast<long double>(dy) * dy);
        if (static_cast<long double>(cross < 0 ? -cross : cross) <= 2 * length) continue;
      }
    }
    out.push_back(v);
  }
  if (out.size() >= 3) ring.swap(out);
}



// The strips' pieces as rings of one linked structure: vertex v's edge runs to next[v].
struct Linked {
  std::vector<Point64> at;
  std::vector<int64_t> next, prev, piece;
  std::vector<char> dead;

  int64_t add(const Point64& p, int64_t of_piece) {
    at.push_back(p);
    next.push_back(-1);
    prev.push_back(-1);
    piece.push_back(of_piece);
    dead.push_back(0);
    return static_cast<int64_t>(at.size()) - 1;
  }

  void add_ring(const Path64& ring, int64_t of_piece) {
    const int64_t first = static_cast<int64_t>(at.size());
    for (const Point64& p : ring) add(p, of_piece);
    const int64_t last = static_cast<int64_t>(at.size()) - 1;
    for (int64_t v = first; v <= last; ++v) {
      next[v] = v == last ? first : v + 1;
      prev[v] = v == first ? last : v - 1;
    }
  }

  // Cuts edge v at the points ys (in the order the edge runs); the stretches' first vertices
  // (v, then the new ones) are appended to `stretches`.
  void cut(int64_t v, const std::vector<int64_t>& ys, std::vector<int64_t>& stretches) {
    int64_t cur = v;
    const int64_t end = next[v];
    stretches.push_back(v);
    for (int64_t y : ys) {
      const int64_t w = add(Point64(at[v].x, y), piece[v]);
      next[cur] = w;
      prev[w] = cur;
      cur = w;
      stretches.push_back(w);
    }
    next[cur] = end;
    prev[end] = cur;
  }

  // Drops edges a and b, which run along the same stretch in opposite directions (the area
  // is on both sides), and relinks their rings around them: a ring may split (a new hole) or
  // two rings become one. Works as well when a and b follow each other.
  void drop_pair(int64_t a, int64_t b) {
    const int64_t pa = prev[a], na = next[a], pb = prev[b], nb = next[b];
    next[pa] = nb;
    prev[nb] = pa;
    next[pb] = na;
    prev[na] = pb;
    dead[a] = dead[b] = 1;
  }
};

int64_t root(std::vector<int64_t>& parent, int64_t p) {
  while (parent[p] != p) p = parent[p] = parent[parent[p]];
  return p;
}

// Joins the pieces either side of a seam. Edges along the seam (first vertices `left` from
// the strip before it, `right` from the one after) are cut at every seam point of either side;
// then a stretch run both ways is inside the answer or outside it, not its border: both edges
// go. Run up from the left (an area west of it) and down from the right (an area east of it):
// the two pieces join there. Run both ways by one side: a bridge of no width that the sweep
// left between two parts of a piece (where the strip's cut shapes ran there and back along the
// seam); dropping it splits the piece in two. A stretch run once is a border and stays.
void join_seam(Linked& r, std::vector<int64_t>& parent, const std::vector<int64_t>& left,
               const std::vector<int64_t>& right) {
  std::vector<int64_t> ys;
  for (const auto* side : {&left, &right})
    for (int64_t v : *side) {
      ys.push_back(r.at[v].y);
      ys.push_back(r.at[r.next[v]].y);
    }
  std::sort(ys.begin(), ys.end());
  ys.erase(std::unique(ys.begin(), ys.end()), ys.end());
  struct Stretch {
    int64_t low, high;
    int up;    // 1 up (y grows), 0 down
    int side;  // 0 left, 1 right: ups from the left and downs from the right come first
    int64_t v;
    bool operator<(const Stretch& o) const {
      if (low != o.low) return low < o.low;
      if (high != o.high) return high < o.high;
      if (up != o.up) return up > o.up;
      return up ? side < o.side : side > o.side;
    }
  };
  std::vector<Stretch> stretches;
  std::vector<int64_t> firsts, inner;
  for (int side = 0; side < 2; ++side)
    for (int64_t v : side == 0 ? left : right) {
      const int64_t y0 = r.at[v].y, y1 = r.at[r.next[v]].y;
      inner.assign(std::upper_bound(ys.begin(), ys.end(), std::min(y0, y1)),
                   std::lower_bound(ys.begin(), ys.end(), std::max(y0, y1)));
      if (y0 > y1) std::reverse(inner.begin(), inner.end());
      firsts.clear();
      r.cut(v, inner, firsts);
      for (int64_t w : firsts) {
        const int64_t a = r.at[w].y, b = r.at[r.next[w]].y;
        stretches.push_back({std::min(a, b), std::max(a, b), a < b ? 1 : 0, side, w});
      }
    }
  std::sort(stretches.begin(), stretches.end());
  for (size_t i = 0; i < stretches.size();) {
    size_t ups = i, end = i;
    while (end < stretches.size() && stretches[end].low == stretches[i].low &&
           stretches[end].high == stretches[i].high)
      ++end;
    size_t downs = ups;
    while (downs < end && stretches[downs].up) ++downs;
    // The k-th up with the k-th down: left-up with right-down first (joins), then the rest.
    for (size_t u = ups, d = downs; u < downs && d < end; ++u, ++d) {
      const int64_t a = stretches[u].v, b = stretches[d].v;
      r.drop_pair(a, b);
      parent[root(parent, r.piece[a])] = root(parent, r.piece[b]);
    }
    i = end;
  }
}

// Whether the closed ring holds the point (x2 / 2, y2 / 2) strictly inside (even-odd; the
// point is known to be off the ring's edges).
bool holds(const Path64& ring, int64_t x2, int64_t y2) {
  bool inside = false;
  for (size_t i = 0, j = ring.size() - 1; i < ring.size(); j = i++) {
    const i128 xi = 2 * static_cast<i128>(ring[i].x), yi = 2 * static_cast<i128>(ring[i].y);
    const i128 xj = 2 * static_cast<i128>(ring[j].x), yj = 2 * static_cast<i128>(ring[j].y);
    if ((yi > y2) == (yj > y2)) continue;
    // x of the edge at height y2, compared with x2 without dividing: sign-corrected.
    const i128 lhs = (xj - xi) * (y2 - yi), rhs = (x2 - xi) * (yj - yi);
    if ((yj > yi) ? (lhs > rhs) : (lhs < rhs)) inside = !inside;
  }
  return inside;
}

struct OutRing {
  Path64 path;
  int sign;       // +1 an exterior, -1 a hole
  int64_t group;  // the joined pieces it bounds (their union-find root)
};

// The rings as the joins left them: seam points dropped, rings of no area too. False when a
// ring does not close (not what the joins give: the caller takes another way).
bool extract_rings(const Linked& linked, std::vector<int64_t>& parent,
                   const std::vector<int64_t>& seams, std::vector<OutRing>& outs) {
  const size_t n = linked.at.size();
  std::vector<char> seen(n, 0);
  for (size_t v0 = 0; v0 < n; ++v0) {
    if (linked.dead[v0] || seen[v0]) continue;
    Path64 ring;
    size_t v = v0, steps = 0;
    do {
      if (linked.dead[v] || seen[v] || ++steps > n) return false;
      seen[v] = 1;
      const Point64& p = linked.at[v];
      if (ring.empty() || !(ring.back() == p)) ring.push_back(p);
      v = static_cast<size_t>(linked.next[v]);
    } while (v != v0);
    while (ring.size() > 1 && ring.back() == ring.front()) ring.pop_back();
    drop_seam_points(ring, seams);
    if (ring.size() < 3) continue;
    const i128 area = twice_area(ring);
    if (area == 0) continue;
    outs.push_back({std::move(ring), area > 0 ? 1 : -1, root(parent, linked.piece[v0])});
  }
  return true;
}

// Polygons from the rings: each exterior with the holes of its group. A group has one exterior
// as a rule; where dropped bridges split a piece it has more, and each hole goes to the
// smallest exterior holding the middle of its first edge (off every other ring). False when a
// hole has no exterior.
bool assemble(const std::vector<OutRing>& outs, Batch& batch) {
  std::unordered_map<int64_t, std::vector<size_t>> exteriors_of;  // group -> its exteriors
  std::vector<int64_t> polygon_of(outs.size(), -1);
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].sign > 0) {
      exteriors_of[outs[i].group].push_back(i);
      polygon_of[i] = static_cast<int64_t>(batch.polygon_pair.size());
      batch.polygon_pair.push_back(polygon_of[i]);
    }
  std::vector<std::vector<size_t>> holes(batch.polygon_pair.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].sign > 0) continue;
    const auto group = exteriors_of.find(outs[i].group);
    if (group == exteriors_of.end()) return false;
    size_t owner = group->second.front();
    if (group->second.size() > 1) {
      const Point64& a = outs[i].path[0];
      const Point64& b = outs[i].path[1];
      owner = SIZE_MAX;
      i128 smallest = 0;
      for (size_t e : group->second) {
        const i128 area = twice_area(outs[e].path);
        if (holds(outs[e].path, a.x + b.x, a.y + b.y) && (owner == SIZE_MAX || area < smallest)) {
          owner = e;
          smallest = area;
        }
      }
      if (owner == SIZE_MAX) return false;
    }
    holes[static_cast<size_t>(polygon_of[owner])].push_back(i);
  }
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].sign < 0) continue;
    const int64_t polygon = polygon_of[i];
    add_ring(batch, outs[i].path, polygon);
    for (size_t h : holes[static_cast<size_t>(polygon)]) add_ring(batch, outs[h].path, polygon);
  }
  return true;
}

}  // namespace

extern "C" {

// The intersection of geometries pairs[2k] and pairs[2k + 1] for each k; nullptr when out of
// memory or when Clipper2 throws (no exception may cross the C ABI). Each geometry is cut to
// the pair's common box first (a cheap linear pass), so the sweep sees only the edges that
// can meet.
void* clipper_intersect_pairs(const int64_t* xy, const int64_t* ring_start,
                              const int64_t* geom_ring_start, int64_t n_geoms,
                              const int64_t* pairs, int64_t n_pairs) {
  Batch* batch = new (std::nothrow) Batch();
  if (batch == nullptr) return nullptr;
  try {
    // Each geometry is read once per batch, however many pairs it is in (~10 here).
    std::vector<Paths64> geoms(static_cast<size_t>(n_geoms));
    std::vector<bool> read(static_cast<size_t>(n_geoms), false);
    auto geom = [&](int64_t g) -> const Paths64& {
      if (!read[g]) {
        geoms[g] = read_geom(xy, ring_start, geom_ring_start, g);
        read[g] = true;
      }
      return geoms[g];
    };
    for (int64_t k = 0; k < n_pairs; ++k) {
      const Paths64& a = geom(pairs[2 * k]);
      const Paths64& b = geom(pairs[2 * k + 1]);
      const Rect64 ra = GetBounds(a), rb = GetBounds(b);
      const Rect64 box(std::max(ra.left, rb.left), std::max(ra.top, rb.top),
                       std::min(ra.right, rb.right), std::min(ra.bottom, rb.bottom));
      if (box.left >= box.right || box.top >= box.bottom) continue;  // no area in common
      const Paths64 ca = clip_to_box(a, box), cb = clip_to_box(b, box);
      if (ca.empty() || cb.empty()) continue;
      Clipper64 clipper;
      clipper.AddSubject(ca);
      clipper.AddClip(cb);
      PolyTree64 tree;
      if (!clipper.Execute(ClipType::Intersection, FillRule::EvenOdd, tree)) continue;
      for (const auto& outer : tree) add_polygons(*batch, *outer, k);
    }
  } catch (...) {
    delete batch;
    return nullptr;
  }
  return batch;
}

// market - union(territories): the area the subject's rings hold that the clip's rings do not.
// Rings r < n_subject_rings are the subject's (the market), the others the clip's
// (territories): ring r's points (degrees, x y x y ...) are ring_start[r] .. ring_start[r + 1],
// its first repeated last; sign[r] is +1 for an exterior, -1 for a hole. Rings are oriented by
// it here because the fill is NonZero: overlapping territories then cover once, and a
// territory's hole that another covers is covered. Degrees go on the grid (`grid` points per
// degree). The work is cut into `strips` strips across x (seams at quantiles of the vertices'
// x, never on a vertex), `threads` at a time. status: 0 done; 1 the pieces did not join into
// simple polygons (the caller takes another way); 2 failed (out of memory, or Clipper2
// threw). nullptr unless 0.
void* clipper_difference_strips(const double* xy, const int64_t* ring_start,
                                const int64_t* sign, int64_t n_rings, int64_t n_subject_rings,
                                double grid, int64_t strips, int64_t threads, int64_t* status) {
  *status = 2;
  try {
    std::vector<Ring> rings;
    std::vector<int64_t> xs;
    read_rings(xy, ring_start, sign, n_rings, n_subject_rings, grid, rings, xs);
    const std::vector<int64_t> seams = choose_seams(xs, strips);
    const size_t n_strips = seams.size() + 1;
    std::vector<std::vector<Piece>> found(n_strips);
    std::atomic<size_t> next_strip{0};
    std::atomic<bool> failed{false};
    auto work = [&]() {
      try {
        for (size_t k; (k = next_strip++) < n_strips && !failed;)
          found[k] = strip_difference(rings, k == 0 ? 0 : seams[k - 1],
                                      k + 1 == n_strips ? 0 : seams[k], k == 0, k + 1 == n_strips);
      } catch (...) {
        failed = true;
      }
    };
    std::vector<std::thread> pool;
    try {
      for (int64_t t = 1; t < std::min<int64_t>(threads, static_cast<int64_t>(n_strips)); ++t)
        pool.emplace_back(work);
    } catch (...) {  // no more threads to be had: those started and this one do the strips
    }
    work();
    for (auto& t : pool) t.join();
    if (failed) return nullptr;

    // The pieces linked, and their seam edges found: left[s] from the strip before seam s,
    // right[s] from the one after it.
    Linked linked;
    std::vector<int64_t> strip_of;
    for (size_t k = 0; k < n_strips; ++k)
      for (const Piece& piece : found[k]) {
        for (const Path64& ring : piece)
          linked.add_ring(ring, static_cast<int64_t>(strip_of.size()));
        strip_of.push_back(static_cast<int64_t>(k));
      }
    std::vector<std::vector<int64_t>> left(seams.size()), right(seams.size());
    const int64_t n_vertices = static_cast<int64_t>(linked.at.size());
    for (int64_t v = 0; v < n_vertices; ++v) {
      const int64_t x = linked.at[v].x;
      if (x != linked.at[linked.next[v]].x) continue;
      const size_t s = static_cast<size_t>(strip_of[linked.piece[v]]);
      if (s < seams.size() && x == seams[s]) left[s].push_back(v);
      if (s > 0 && x == seams[s - 1]) right[s - 1].push_back(v);
    }
    std::vector<int64_t> parent(strip_of.size());
    for (size_t p = 0; p < parent.size(); ++p) parent[p] = static_cast<int64_t>(p);
    for (size_t s = 0; s < seams.size(); ++s) join_seam(linked, parent, left[s], right[s]);

    std::vector<OutRing> outs;
    if (!extract_rings(linked, parent, seams, outs)) {
      *status = 1;
      return nullptr;
    }
    auto batch = std::make_unique<Batch>();  // freed should anything below throw
    if (!assemble(outs, *batch)) {
      *status = 1;
      return nullptr;
    }
    *status = 0;
    return batch.release();
  } catch (...) {
    return nullptr;
  }
}

// sizes[0] = vertices, sizes[1] = rings, sizes[2] = polygons.
void clipper_batch_sizes(const void* handle, int64_t* sizes) {
  const Batch* batch = static_cast<const Batch*>(handle);
  sizes[0] = static_cast<int64_t>(batch->xy.size() / 2);
  sizes[1] = static_cast<int64_t>(batch->ring_polygon.size());
  sizes[2] = static_cast<int64_t>(batch->polygon_pair.size());
}

// Copies the batch out into arrays of the sizes above (ring_start has rings + 1 entries).
void clipper_batch_copy(const void* handle, int64_t* xy, int64_t* ring_start,
                        int64_t* ring_polygon, int64_t* polygon_pair) {
  const Batch* batch = static_cast<const Batch*>(handle);
  std::copy(batch->xy.begin(), batch->xy.end(), xy);
  std::copy(batch->ring_start.begin(), batch->ring_start.end(), ring_start);
  std::copy(batch->ring_polygon.begin(), batch->ring_polygon.end(), ring_polygon);
  std::copy(batch->polygon_pair.begin(), batch->polygon_pair.end(), polygon_pair);
}

void clipper_batch_free(void* handle) { delete static_cast<Batch*>(handle); }

}  // extern "C"
