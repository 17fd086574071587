// Reading what `orderflow bench` and the connector benchmarks wrote: a file's whole text
// and a number of a JSON report (cpprestsdk's json, included first by the test).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace orderflow::testing {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

inline double num(const web::json::value& v, const char* key) {
  return v.at(utility::conversions::to_string_t(key)).as_double();
}

}  // namespace orderflow::testing
