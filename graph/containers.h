// Small helpers for the hash tables the hot path keeps (Abseil's).
#pragma once

#include <cstddef>

namespace orderflow {

// Empties a bounded cache and keeps its table: Abseil's clear() gives a large one back, and
// refilling it would rehash every key again at each doubling (a stall of the thread).
template <typename Map>
void empty_keeping_capacity(Map& cache) {
  const size_t n = cache.size();
  cache.clear();
  cache.reserve(n);
}

}  // namespace orderflow
