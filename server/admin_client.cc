#include "server/admin_client.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <utility>  // before cpprestsdk: Boost.Asio's C++20 awaitable.hpp uses std::exchange
#include <cpprest/http_client.h>

#include <CLI/CLI.hpp>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace orderflow::server {

void add_server_options(CLI::App* cmd, ServerAccess* access, const std::string& what) {
  cmd->add_option("--server", access->url,
                  "URL of a running server (http://HOST:PORT): " + what + " through its admin API");
  cmd->add_option("--token-file", access->token_file,
                  "with --server: a file whose first line is the bearer token (else $ORDERFLOW_TOKEN)");
  cmd->add_option("--ca-file", access->ca_file, "with --server https://...: trust this PEM CA");
}

std::string resolve_access(ServerAccess* access) {
  if (access->url.rfind("http://", 0) != 0 && access->url.rfind("https://", 0) != 0)
    return "--server needs an http:// or https:// URL, got '" + access->url + "'";
  while (!access->url.empty() && access->url.back() == '/') access->url.pop_back();
  auto valid = [](const std::string& t) {
    if (t.empty()) return false;
    for (unsigned char c : t)
      if (c <= 0x20 || c >= 0x7f) return false;
    return true;
  };
  if (!access->token_file.empty()) {
    std::ifstream in(access->token_file, std::ios::binary);
    if (!in) return "--token-file: cannot open " + access->token_file;
    std::string line;
    std::getline(in, line);
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!line.empty() && blank(line.back())) line.pop_back();
    size_t first = 0;
    while (first < line.size() && blank(line[first])) ++first;
    line.erase(0, first);
    if (!valid(line))
      return "--token-file: " + access->token_file +
             ": the first line must be the token alone (no blanks or control characters)";
    access->token = line;
  } else if (const char* env = std::getenv("ORDERFLOW_TOKEN"); env != nullptr && *env != '\0') {
    if (!valid(env)) return "ORDERFLOW_TOKEN: the token contains a blank or a control character";
    access->token = env;
  }
  return "";
}

AdminAnswer admin_call(const ServerAccess& access, const std::string& method, const std::string& path,
                       const std::string& body) {
  AdminAnswer out;
  try {
    web::http::client::http_client_config config;
    config.set_timeout(std::chrono::seconds(access.timeout_s));
    if (!access.ca_file.empty()) {
      const std::string ca = access.ca_file;
      config.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) { ctx.load_verify_file(ca); });
    }
    web::http::client::http_client client(access.url, config);
    web::http::http_request req(method);
    req.set_request_uri(web::uri(path));
    if (!access.token.empty()) req.headers().add("Authorization", "Bearer " + access.token);
    if (!body.empty()) req.set_body(body, "application/json");
    web::http::http_response resp = client.request(req).get();
    out.status = resp.status_code();
    const std::string text = resp.extract_utf8string(true).get();
    if (out.status == 200) {
      out.body = text;
    } else {
      // {"error": {"code", "message"}}: the message; else the status line's words.
      google::protobuf::Struct st;
      if (google::protobuf::util::JsonStringToMessage(text, &st).ok()) {
        auto e = st.fields().find("error");
        if (e != st.fields().end() && e->second.has_struct_value()) {
          auto m = e->second.struct_value().fields().find("message");
          if (m != e->second.struct_value().fields().end()) out.error = m->second.string_value();
        } else if (e != st.fields().end()) {
          out.error = e->second.string_value();
        }
      }
      if (out.error.empty()) out.error = "HTTP " + std::to_string(out.status) + " " + resp.reason_phrase();
    }
  } catch (const std::exception& ex) {
    out.status = 0;
    out.error = "cannot reach " + access.url + ": " + ex.what();
  }
  return out;
}

int admin_failure(const char* program, const AdminAnswer& a, int not_found_code) {
  std::string msg = a.error;
  if (a.status == 401) msg += " (give the token with --token-file or ORDERFLOW_TOKEN)";
  if (a.status == 403) msg += " (this needs a token with the write role)";
  std::fprintf(stderr, "orderflow %s: %s\n", program, msg.c_str());
  if (a.status == 400) return 2;
  if (a.status == 404) return not_found_code;
  return 1;
}

}  // namespace orderflow::server
