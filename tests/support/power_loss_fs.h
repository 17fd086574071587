// A RocksDB FileSystem decorator for power-loss tests: it remembers, per file, how much of
// it was synced, and at a chosen operation "loses power": that operation and every later one
// fail, and power_loss() cuts each file back to its synced length (what a disk keeps when
// the machine dies; unsynced page-cache data is gone, or, torn, partly there and partly garbage). Pass it to a store through
// RocksOptions::env (rocksdb::NewCompositeEnv).
#pragma once

#include <rocksdb/file_system.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>

namespace orderflow::testing {

// Tracks the written and synced length of every file RocksDB writes through it. arm(n)
// makes the n-th mutating operation from now the moment power is lost: it and everything
// after it fail (the machine is gone); power_loss() then cuts each file to its synced length
// and restores power. Thread-safe.
class PowerLossFs : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerLossFs(std::shared_ptr<rocksdb::FileSystem> target) : FileSystemWrapper(std::move(target)) {}
  const char* Name() const override { return "PowerLossFs"; }

  void arm(uint64_t after_ops) {
    std::lock_guard lock(mu_);
    countdown_ = after_ops;
  }
  bool dead() const { return dead_.load(); }
  // The files as the disk keeps them; returns how many bytes were dropped. With a non-zero
  // `torn` seed, a file keeps a random part of its unsynced bytes, some of them garbage (a
  // disk that wrote some pages of the tail and not others, or half of one).
  uint64_t power_loss(uint32_t torn = 0) {
    std::lock_guard lock(mu_);
    std::mt19937 rng(torn);
    uint64_t dropped = 0;
    for (const auto& [path, f] : files_) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(path, ec);
      if (ec || size <= f.synced) continue;
      uint64_t keep = f.synced;
      if (torn != 0) keep += rng() % (size - f.synced + 1);
      dropped += size - keep;
      std::filesystem::resize_file(path, keep);
      if (torn != 0 && keep > f.synced) {
        const uint64_t at = f.synced + rng() % (keep - f.synced);
        const uint64_t n = std::min<uint64_t>(keep - at, 1 + rng() % 64);
        std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(static_cast<std::streamoff>(at));
        for (uint64_t i = 0; i < n; ++i) file.put(static_cast<char>(rng()));
      }
    }
    files_.clear();  // what is left is on the disk
    countdown_ = 0;
    dead_ = false;
    return dropped;
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override {
    if (tick()) return lost();
    auto s = target()->NewWritableFile(f, o, r, d);
    if (s.ok()) wrap(f, 0, r);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override {
    if (tick()) return lost();
    std::error_code ec;
    const auto existing = std::filesystem::file_size(f, ec);
    auto s = target()->ReopenWritableFile(f, o, r, d);
    if (s.ok()) wrap(f, ec ? 0 : existing, r);
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override {
    if (tick()) return lost();
    auto s = target()->ReuseWritableFile(f, old, o, r, d);
    if (s.ok()) {
      forget(old);
      wrap(f, 0, r);
    }
    return s;
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override {
    if (tick()) return lost();
    auto s = target()->RenameFile(from, to, o, d);
    if (s.ok()) {
      std::lock_guard lock(mu_);
      auto it = files_.find(from);
      if (it != files_.end()) {
        files_[to] = it->second;
        files_.erase(from);
      } else {
        files_.erase(to);
      }
    }
    return s;
  }
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (tick()) return lost();
    auto s = target()->DeleteFile(f, o, d);
    if (s.ok()) forget(f);
    return s;
  }

 private:
  struct Lengths {
    uint64_t written = 0;
    uint64_t synced = 0;
  };

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> t, PowerLossFs* fs, std::string path)
        : FSWritableFileOwnerWrapper(std::move(t)), fs_(fs), path_(std::move(path)) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (fs_->tick()) return lost();
      auto s = FSWritableFileOwnerWrapper::Append(d, o, g);
      if (s.ok()) fs_->appended(path_, d.size());
      return s;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* g) override {
      if (fs_->tick()) return lost();
      auto s = FSWritableFileOwnerWrapper::Append(d, o, v, g);
      if (s.ok()) fs_->appended(path_, d.size());
      return s;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* g) override {
      if (fs_->tick()) return lost();
      auto s = FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, g);
      if (s.ok()) fs_->written_to(path_, off + d.size());
      return s;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                       const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* g) override {
      if (fs_->tick()) return lost();
      auto s = FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, v, g);
      if (s.ok()) fs_->written_to(path_, off + d.size());
      return s;
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (fs_->tick()) return lost();
      auto s = FSWritableFileOwnerWrapper::Truncate(size, o, g);
      if (s.ok()) fs_->truncated(path_, size);
      return s;
    }
    rocksdb::IOStatus Flush(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (fs_->dead()) return lost();
      return FSWritableFileOwnerWrapper::Flush(o, g);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (fs_->tick()) return lost();
      auto s = FSWritableFileOwnerWrapper::Sync(o, g);
      if (s.ok()) fs_->synced(path_);
      return s;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (fs_->tick()) return lost();
      auto s = FSWritableFileOwnerWrapper::Fsync(o, g);
      if (s.ok()) fs_->synced(path_);
      return s;
    }
    // A range sync makes no promise about the file's size or metadata: not counted as synced.
    rocksdb::IOStatus RangeSync(uint64_t off, uint64_t n, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      if (fs_->dead()) return lost();
      return FSWritableFileOwnerWrapper::RangeSync(off, n, o, g);
    }

   private:
    PowerLossFs* fs_;
    std::string path_;
  };

  static rocksdb::IOStatus lost() { return rocksdb::IOStatus::IOError("power lost (injected)"); }

  // Counts one mutating operation; true when power is (now) off.
  bool tick() {
    std::lock_guard lock(mu_);
    if (dead_) return true;
    if (countdown_ > 0 && --countdown_ == 0) dead_ = true;
    return dead_;
  }
  void wrap(const std::string& path, uint64_t existing, std::unique_ptr<rocksdb::FSWritableFile>* r) {
    {
      std::lock_guard lock(mu_);
      files_[path] = Lengths{existing, existing};
    }
    *r = std::make_unique<File>(std::move(*r), this, path);
  }
  void forget(const std::string& path) {
    std::lock_guard lock(mu_);
    files_.erase(path);
  }
  void appended(const std::string& path, uint64_t n) {
    std::lock_guard lock(mu_);
    files_[path].written += n;
  }
  void written_to(const std::string& path, uint64_t end) {
    std::lock_guard lock(mu_);
    auto& f = files_[path];
    f.written = std::max(f.written, end);
  }
  void truncated(const std::string& path, uint64_t size) {
    std::lock_guard lock(mu_);
    auto& f = files_[path];
    f.written = size;
    f.synced = std::min(f.synced, size);
  }
  void synced(const std::string& path) {
    std::lock_guard lock(mu_);
    auto& f = files_[path];
    f.synced = f.written;
  }

  std::mutex mu_;
  std::map<std::string, Lengths> files_;  // guarded by mu_: files written since the last power loss
  uint64_t countdown_ = 0;                // guarded by mu_: operations left until power is lost; 0 = never
  std::atomic<bool> dead_{false};
};

}  // namespace orderflow::testing
