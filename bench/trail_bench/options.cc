#include "bench/trail_bench/options.h"

#include <algorithm>
#include <charconv>

namespace trail::bench {

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kAppend: return "append";
    case Mode::kRead: return "read";
    case Mode::kMixed: return "mixed";
  }
  return "unknown";
}

namespace {

bool is_valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return ec == std::errc{} && end == port.data() + port.size() && value >= 1 && value <= 65535;
}

}  // namespace

std::optional<Target> parse_url(std::string_view url, std::string& error) {
  Target target;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    target.tls = true;
    rest = url.substr(8);
  } else {
    error = "--url must start with http:// or https://";
    return std::nullopt;
  }
  if (rest.find_first_of("?#@") != std::string_view::npos) {
    error = "--url must not carry user info, a query or a fragment";
    return std::nullopt;
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view prefix =
      slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);

  std::string_view host;
  std::string_view port;
  if (authority.starts_with('[')) {  // [IPv6]:port
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "--url has an unterminated IPv6 address";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "--url: expected ':' after the IPv6 address";
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    error = "--url has no host";
    return std::nullopt;
  }
  const std::string_view default_port = target.tls ? "443" : "80";
  if (port.empty()) port = default_port;
  if (!is_valid_port(port)) {
    error = "--url has an invalid port \"" + std::string(port) + "\"";
    return std::nullopt;
  }
  target.host = std::string(host);
  target.port = std::string(port);
  const bool ipv6 = host.find(':') != std::string_view::npos;
  target.host_header = ipv6 ? "[" + target.host + "]" : target.host;
  if (port != default_port) target.host_header += ":" + target.port;
  target.path_prefix = std::string(prefix);
  return target;
}

bool is_valid_project(std::string_view project) {
  if (project.empty() || project.size() > kProjectBytesMax) return false;
  return std::all_of(project.begin(), project.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace trail::bench
