#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace orderflow::connectors {

enum class HexCase { upper, lower };

// Percent-encoding of one URL component (RFC 3986): letters, digits and the characters of
// `keep` stay, every other byte becomes %XX. The default keeps the unreserved set, so the
// result fits a path segment or a query value; Cosmos DB's documented examples use lower case.
std::string percent_encode(std::string_view s, std::string_view keep = "-_.~", HexCase hex = HexCase::upper);

// Percent-decoding; nullopt on a broken escape. `plus_is_space` for query components.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

}  // namespace orderflow::connectors
