// A RocksDB FileSystem decorator for fault tests: while full() is set, every write to a
// file (WAL, SST, MANIFEST) whose path contains `only` (default: every file) fails with
// NoSpace, as on a full disk; creating files and reading still work (a full disk has inodes
// left). Pass it to a store through RocksOptions::env (rocksdb::NewCompositeEnv).
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace orderflow::testing {

class FullDiskFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FullDiskFs(std::shared_ptr<rocksdb::FileSystem> target, std::string only = "")
      : FileSystemWrapper(std::move(target)), only_(std::move(only)) {}
  const char* Name() const override { return "FullDiskFs"; }
  void set_full(bool full) { full_ = full; }
  uint64_t refused() const { return refused_; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override {
    auto s = target()->NewWritableFile(f, o, r, d);
    if (s.ok() && covers(f)) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override {
    auto s = target()->ReopenWritableFile(f, o, r, d);
    if (s.ok() && covers(f)) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* d) override {
    auto s = target()->ReuseWritableFile(f, old, o, r, d);
    if (s.ok() && covers(f)) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> t, FullDiskFs* fs) : FSWritableFileOwnerWrapper(std::move(t)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      return fs_->refuse() ? rocksdb::IOStatus::NoSpace("injected") : FSWritableFileOwnerWrapper::Append(d, o, g);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* g) override {
      return fs_->refuse() ? rocksdb::IOStatus::NoSpace("injected") : FSWritableFileOwnerWrapper::Append(d, o, v, g);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* g) override {
      return fs_->refuse() ? rocksdb::IOStatus::NoSpace("injected") : FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, g);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& d, uint64_t off, const rocksdb::IOOptions& o,
                                       const rocksdb::DataVerificationInfo& v, rocksdb::IODebugContext* g) override {
      return fs_->refuse() ? rocksdb::IOStatus::NoSpace("injected")
                           : FSWritableFileOwnerWrapper::PositionedAppend(d, off, o, v, g);
    }

   private:
    FullDiskFs* fs_;
  };
  bool covers(const std::string& file) const { return only_.empty() || file.find(only_) != std::string::npos; }
  bool refuse() {
    if (!full_) return false;
    ++refused_;
    return true;
  }
  std::atomic<bool> full_{false};
  std::atomic<uint64_t> refused_{0};
  const std::string only_;
};

}  // namespace orderflow::testing
