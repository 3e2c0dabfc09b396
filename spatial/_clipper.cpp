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
#include <cstdint>
#include <new>
#include <vector>

#include "clipper2/clipper.h"  // Clipper64, PolyTree64, RectClip

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
    for (int64_t v = ring_start[r]; v < ring_start[r + 1]; ++v) ring.emplace_back(xy[2 * v], xy[2 * v + 1]);
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

}  // namespace

extern "C" {

// The intersection of geometries pairs[2k] and pairs[2k + 1] for each k; nullptr when out of
// memory or when Clipper2 throws (no exception may cross the C ABI). Each geometry is cut to the pair's common box first (a cheap linear pass), so the
// sweep sees only the edges that can meet.
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
      const Paths64 ca = RectClip(box, a), cb = RectClip(box, b);
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
