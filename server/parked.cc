#include "server/parked.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "connectors/url.h"
#include "graph/json.h"
#include "server/admin_client.h"

namespace orderflow::server {
namespace {

struct ParkedFlags {
  ServerAccess server;
  std::string node;
  std::string command_id;
  bool all = false;
  bool json = false;
  int64_t timeout_s = 10;
};

int fail(const std::string& msg) {
  std::fprintf(stderr, "orderflow parked: %s\n", msg.c_str());
  return 1;
}

int usage(const std::string& msg) {
  std::fprintf(stderr, "orderflow parked: %s\n", msg.c_str());
  return 2;
}

int check_server(ParkedFlags& flags) {
  if (flags.server.url.empty()) return usage("--server URL is needed (parked reactions are kept by a running server)");
  if (std::string why = resolve_access(&flags.server); !why.empty()) return usage(why);
  return 0;
}

std::string text(const google::protobuf::Struct& st, const char* key) {
  auto it = st.fields().find(key);
  if (it == st.fields().end()) return "";
  if (it->second.has_number_value()) return std::to_string(static_cast<int64_t>(it->second.number_value()));
  return it->second.string_value();
}

std::string utc_ms(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int list(ParkedFlags& flags) {
  if (int rc = check_server(flags); rc != 0) return rc;
  const std::string q = flags.node.empty() ? std::string() : "?node=" + connectors::percent_encode(flags.node);
  const AdminAnswer a = admin_call(flags.server, "GET", "/api/v1/admin/parked" + q);
  if (a.status != 200) return admin_failure("parked", a, 1);
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok()) return fail("the server's answer is not JSON");
  auto parked = st.fields().find("parked");
  if (parked == st.fields().end() || !parked->second.has_list_value()) return fail("the server's answer has no parked list");
  const auto& list = parked->second.list_value().values();
  if (flags.json) {
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(parked->second.list_value(), &out);
    std::printf("%s\n", out.c_str());
    return 0;
  }
  std::printf("%zu parked reaction%s (server %s)\n", static_cast<size_t>(list.size()), list.size() == 1 ? "" : "s",
              flags.server.url.c_str());
  if (!list.empty())
    std::printf("%-10s %-32s %-14s %-20s %-24s %8s %-20s %s\n", "NODE", "COMMAND ID", "COMMAND", "STREAM",
                "EVENT STREAM/VERSION", "ATTEMPTS", "PARKED", "REASON");
  for (const auto& v : list) {
    const auto& r = v.struct_value();
    const std::string event = text(r, "event_stream") + "/" + text(r, "event_version");
    const std::string at = utc_ms(std::stoll("0" + text(r, "parked_at_ms")));
    std::printf("%-10s %-32s %-14s %-20s %-24s %8s %-20s %s\n", text(r, "node").c_str(), text(r, "command_id").c_str(),
                text(r, "command").c_str(), text(r, "stream").c_str(), event.c_str(), text(r, "attempts").c_str(),
                at.c_str(), text(r, "reason").c_str());
  }
  return 0;
}

int replay(ParkedFlags& flags) {
  if (flags.all == !flags.command_id.empty()) return usage("replay needs exactly one of --command-id ID and --all");
  if (int rc = check_server(flags); rc != 0) return rc;
  JsonWriter w;
  w.begin_object();
  if (flags.all)
    w.field("all", true);
  else
    w.field("command_id", flags.command_id);
  if (!flags.node.empty()) w.field("node", flags.node);
  w.field("timeout_s", flags.timeout_s);
  w.end_object();
  // Each command may wait its timeout: the request as long as all of them could, bounded.
  flags.server.timeout_s = flags.all ? 3600 : flags.timeout_s + 20;
  const AdminAnswer a = admin_call(flags.server, "POST", "/api/v1/admin/parked/replay", w.take());
  if (a.status != 200) return admin_failure("parked", a, 1);
  google::protobuf::Struct st;
  if (!google::protobuf::util::JsonStringToMessage(a.body, &st).ok()) return fail("the server's answer is not JSON");
  size_t replayed = 0, failed = 0;
  if (auto it = st.fields().find("replayed"); it != st.fields().end())
    for (const auto& v : it->second.list_value().values()) {
      ++replayed;
      std::printf("replayed %s: %s\n", text(v.struct_value(), "command_id").c_str(),
                  text(v.struct_value(), "outcome").c_str());
    }
  if (auto it = st.fields().find("failed"); it != st.fields().end())
    for (const auto& v : it->second.list_value().values()) {
      ++failed;
      std::fprintf(stderr, "orderflow parked: %s kept: %s\n", text(v.struct_value(), "command_id").c_str(),
                   text(v.struct_value(), "reason").c_str());
    }
  std::printf("%zu replayed, %zu kept\n", replayed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace

void add_parked_command(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ParkedFlags>();
  CLI::App* parked = app.add_subcommand(
      "parked", "list and replay a running server's parked saga reactions (a saga with `parked:`)");
  parked->require_subcommand(1);
  auto common = [&](CLI::App* cmd) {
    add_server_options(cmd, &flags->server, "its parked reactions");
    cmd->add_option("--node", flags->node, "only this saga's (node id)");
  };
  CLI::App* list_cmd = parked->add_subcommand(
      "list", "one line per parked reaction: node, command id, command, stream, event, attempts, when, reason");
  common(list_cmd);
  list_cmd->add_flag("--json", flags->json, "a JSON array instead of the table");
  list_cmd->callback([flags, exit_code] { *exit_code = list(*flags); });

  CLI::App* replay_cmd = parked->add_subcommand(
      "replay",
      "resubmit parked commands with their own ids and wait for each outcome; a final one (committed, duplicate, "
      "rejected) removes the record");
  common(replay_cmd);
  auto* id = replay_cmd->add_option("--command-id", flags->command_id, "the parked command to replay");
  replay_cmd->add_flag("--all", flags->all, "every parked command")->excludes(id);
  replay_cmd->add_option("--timeout", flags->timeout_s, "seconds to wait for each command's outcome")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600}));
  replay_cmd->callback([flags, exit_code] { *exit_code = replay(*flags); });
}

}  // namespace orderflow::server
