#ifndef CLIPPER_VERSION_H
#define CLIPPER_VERSION_H

constexpr auto CLIPPER2_VERSION = "2.0.1";

#endif  // CLIPPER_VERSION_H
