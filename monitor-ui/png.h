// Minimal PNG writer (8-bit RGBA, zlib-compressed IDAT) for --screenshot.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orderflow::monitor {

// rgba: width*height*4 bytes, top row first. Returns the PNG file bytes (empty on failure).
std::vector<std::uint8_t> encode_png(const std::uint8_t* rgba, int width, int height);
bool write_png(const std::string& path, const std::uint8_t* rgba, int width, int height);

}  // namespace orderflow::monitor
