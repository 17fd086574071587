#include "connectors/faulty_store.h"

#include <algorithm>
#include <filesystem>

#include "graph/log.h"

namespace orderflow::connectors {

const graph::Options<FaultyStoreParams>& faulty_store_params() {
  using P = FaultyStoreParams;
  static const auto params =
      graph::Options<P>()
          .store(&P::inner, "inner", "the wrapped event store (another store under 'stores:')")
          .required(&P::fail_streams, "fail_streams",
                    "comma-separated stream ids whose appends fail with an I/O error, e.g. \"sku-X,sku-Y\"")
          .text(&P::heal_file, "heal_file",
                "file (relative to --data-dir) whose existence heals the store at run time; \"\" = never heals");
  return params;
}

std::set<std::string> parse_fail_streams(const std::string& text, std::string* why) {
  std::set<std::string> out;
  size_t from = 0;
  for (;;) {
    const size_t comma = text.find(',', from);
    const std::string item = text.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
    if (item.empty()) {
      *why = "a comma-separated list of stream ids (e.g. \"sku-X,sku-Y\"), without empty items";
      return {};
    }
    if (item.find_first_of(" \t") != std::string::npos) {
      *why = "a comma-separated list of stream ids without spaces, got '" + item + "'";
      return {};
    }
    out.insert(item);
    if (comma == std::string::npos) return out;
    from = comma + 1;
  }
}

FaultyEventStore::FaultyEventStore(std::string name, EventStore* events, ChangeFeed* feed,
                                   std::set<std::string> fail_streams, std::string heal_file)
    : name_(std::move(name)),
      events_(events),
      feed_(feed),
      fail_streams_(std::move(fail_streams)),
      heal_file_(std::move(heal_file)) {
  std::string streams;
  for (const auto& s : fail_streams_) streams += (streams.empty() ? "" : ",") + s;
  log::warn("store of kind faulty (tests and fault drills only): appends to some streams fail",
            {{"store", name_}, {"fail_streams", streams}, {"heal_file", heal_file_.empty() ? "(none)" : heal_file_}});
}

bool FaultyEventStore::healed() const {
  std::error_code ec;
  return !heal_file_.empty() && std::filesystem::exists(heal_file_, ec);
}

std::vector<AppendResult> append_refusing(EventStore& inner, const std::vector<AppendRequest>& batch,
                                          const std::function<Status(const AppendRequest&)>& refuse) {
  std::vector<AppendResult> out(batch.size());
  std::vector<AppendRequest> pass;
  std::vector<size_t> index;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (Status s = refuse(batch[i]); !s) {
      out[i].stream = batch[i].stream;
      out[i].status = std::move(s);
    } else {
      pass.push_back(batch[i]);
      index.push_back(i);
    }
  }
  if (!pass.empty()) {
    auto written = inner.append(pass);
    for (size_t k = 0; k < written.size(); ++k) out[index[k]] = std::move(written[k]);
  }
  return out;
}

std::vector<AppendResult> FaultyEventStore::append(const std::vector<AppendRequest>& batch) {
  const bool touches = std::any_of(batch.begin(), batch.end(),
                                   [&](const AppendRequest& r) { return fail_streams_.count(r.stream) > 0; });
  if (!touches || healed()) return events_->append(batch);
  // A decision chain never spans streams, so no request that goes through depends on a refused one.
  return append_refusing(*events_, batch, [&](const AppendRequest& r) {
    if (fail_streams_.count(r.stream) == 0) return Status::ok();
    return Status::io_error("injected fault (store '" + name_ + "', kind faulty): appends to stream '" + r.stream +
                            "' fail" + (heal_file_.empty() ? std::string() : " until " + heal_file_ + " exists"));
  });
}

}  // namespace orderflow::connectors
