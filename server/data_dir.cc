#include "server/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace orderflow::server {

bool load_graph(const std::string& path, const graph::KindRegistry& registry, graph::GraphDef* out) {
  auto r = graph::load_and_validate(path, registry);
  for (const auto& d : r.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
  if (!r.ok()) {
    std::fprintf(stderr, "%zu problem%s in %s\n", r.diagnostics.size(), r.diagnostics.size() == 1 ? "" : "s",
                 path.c_str());
    return false;
  }
  *out = std::move(r.graph);
  return true;
}

bool lock_data_dir(const std::string& data_dir) {
  const std::string path = (std::filesystem::path(data_dir) / "instance.lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  return true;  // the descriptor stays open: the lock is held until the process exits
}

}  // namespace orderflow::server
