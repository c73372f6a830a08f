#include "bench/trail_bench/report.h"

#include <cmath>
#include <cstdio>

#include <boost/beast/http/status.hpp>
#include <boost/json.hpp>

namespace trail::bench {

namespace json = boost::json;

namespace {

double per_second(std::uint64_t count, double seconds) {
  return seconds > 0.0 ? static_cast<double>(count) / seconds : 0.0;
}

double ms(std::uint64_t us) { return static_cast<double>(us) / 1000.0; }

struct LatencyMs {
  double p50, p90, p99, p999, max, mean;
};

LatencyMs latency_ms(const Histogram& h) {
  return {ms(h.quantile_value(0.50)),
          ms(h.quantile_value(0.90)),
          ms(h.quantile_value(0.99)),
          ms(h.quantile_value(0.999)),
          ms(h.max()),
          h.mean() / 1000.0};
}

Histogram all_latencies(const Stats& stats) {
  Histogram all = stats.append.latency_us;
  all.merge(stats.read.latency_us);
  return all;
}

std::string format(const char* pattern, auto... args) {
  char line[512];
  const int n = std::snprintf(line, sizeof line, pattern, args...);
  return n < 0 ? std::string{}
               : std::string(line, std::min(static_cast<std::size_t>(n), sizeof line - 1));
}

std::string status_name(unsigned status) {
  const auto reason =
      boost::beast::http::obsolete_reason(boost::beast::http::int_to_status(status));
  return std::to_string(status) + " " + std::string(reason.data(), reason.size());
}

std::string latency_line(const char* label, const Histogram& h) {
  const LatencyMs l = latency_ms(h);
  return format("  %-12s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n", label,
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean);
}

json::object latency_json(const Histogram& h) {
  const LatencyMs l = latency_ms(h);
  return {{"p50", l.p50},   {"p90", l.p90}, {"p99", l.p99},
          {"p999", l.p999}, {"max", l.max}, {"mean", l.mean}};
}

json::object op_json(const OpStats& op, double seconds, bool with_events) {
  json::object out{{"requests", op.requests}, {"requests_per_s", per_second(op.requests, seconds)}};
  if (with_events) {
    out["events"] = op.events;
    out["events_per_s"] = per_second(op.events, seconds);
  }
  out["latency_ms"] = latency_json(op.latency_us);
  return out;
}

// Like json::serialize, but doubles in plain fixed-point ("94.719", not "9.4719E1"): the
// numbers here are rates, seconds and milliseconds, read by people as often as by scripts.
void write_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        out += json::serialize(json::string(key));
        out.push_back(':');
        write_json(out, item);
      }
      out.push_back('}');
      return;
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        write_json(out, item);
      }
      out.push_back(']');
      return;
    }
    case json::kind::double_: {
      const double d = v.get_double();
      out += std::isfinite(d) ? format("%.3f", d) : std::string("null");
      return;
    }
    default:
      out += json::serialize(v);
      return;
  }
}

}  // namespace

std::string format_text(const RunSummary& summary) {
  const Options& o = summary.options;
  const Stats& s = summary.stats;
  const double t = summary.measured_s;
  const std::uint64_t requests = s.append.requests + s.read.requests;
  std::string out;
  out += format("trail-bench %s: %s, project \"%s\", %zu connections on %zu threads",
                std::string(mode_name(o.mode)).c_str(), o.url.c_str(), o.project.c_str(),
                o.connections, summary.threads);
  if (o.mode != Mode::kRead)
    out += format(", batch %zu, ~%zu B of fields", o.batch, o.payload_bytes);
  if (o.mode == Mode::kMixed) out += format(", %u%% reads", o.read_percent);
  out += format(", %zu cases\n", o.cases);
  out += format("  measured     %.2f s after %.1f s of warm-up%s\n", t, o.warmup_s,
                summary.interrupted ? " (interrupted)" : "");
  out += format("  requests     %llu  (%.1f/s)\n", static_cast<unsigned long long>(requests),
                per_second(requests, t));
  if (o.mode != Mode::kRead) {
    out += format("  events       %llu  (%.1f/s)\n",
                  static_cast<unsigned long long>(s.append.events), per_second(s.append.events, t));
  }
  out += latency_line("latency ms", all_latencies(s));
  if (o.mode == Mode::kMixed) {
    out += format("  appends      %llu  (%.1f/s)\n",
                  static_cast<unsigned long long>(s.append.requests),
                  per_second(s.append.requests, t));
    out += latency_line("  latency ms", s.append.latency_us);
    out += format("  reads        %llu  (%.1f/s)\n",
                  static_cast<unsigned long long>(s.read.requests), per_second(s.read.requests, t));
    out += latency_line("  latency ms", s.read.latency_us);
  }
  out += format("  errors       %llu\n", static_cast<unsigned long long>(s.failures()));
  for (const auto& [status, n] : s.failed_by_status) {
    out +=
        format("    %-40s %llu\n", status_name(status).c_str(), static_cast<unsigned long long>(n));
    if (const auto it = s.sample_by_status.find(status); it != s.sample_by_status.end()) {
      out += "      first: " + it->second + "\n";
    }
  }
  for (const auto& [what, n] : s.failed_by_io) {
    out += format("    %-40s %llu\n", what.c_str(), static_cast<unsigned long long>(n));
  }
  out += format("  connections  %llu opened (warm-up included; more than %zu means reconnects)\n",
                static_cast<unsigned long long>(s.connects), o.connections);
  return out;
}

std::string format_json(const RunSummary& summary) {
  const Options& o = summary.options;
  const Stats& s = summary.stats;
  const double t = summary.measured_s;
  const std::uint64_t requests = s.append.requests + s.read.requests;
  json::object out{{"mode", mode_name(o.mode)},
                   {"url", o.url},
                   {"project", o.project},
                   {"connections", o.connections},
                   {"threads", summary.threads},
                   {"batch", o.batch},
                   {"payload_bytes", o.payload_bytes},
                   {"cases", o.cases},
                   {"own_cases", o.own_cases},
                   {"warmup_s", o.warmup_s},
                   {"duration_s", t},
                   {"interrupted", summary.interrupted},
                   {"requests", requests},
                   {"requests_per_s", per_second(requests, t)},
                   {"events", s.append.events},
                   {"events_per_s", per_second(s.append.events, t)},
                   {"latency_ms", latency_json(all_latencies(s))}};
  if (o.mode == Mode::kMixed) out["read_percent"] = o.read_percent;
  if (o.mode != Mode::kRead) out["appends"] = op_json(s.append, t, true);
  if (o.mode != Mode::kAppend) out["reads"] = op_json(s.read, t, false);
  json::object by_status;
  json::object samples;
  for (const auto& [status, n] : s.failed_by_status) by_status[std::to_string(status)] = n;
  for (const auto& [status, text] : s.sample_by_status) samples[std::to_string(status)] = text;
  json::object by_io;
  for (const auto& [what, n] : s.failed_by_io) by_io[what] = n;
  out["errors"] = json::object{{"total", s.failures()},
                               {"by_status", std::move(by_status)},
                               {"first_by_status", std::move(samples)},
                               {"io", std::move(by_io)}};
  out["connects"] = s.connects;
  std::string text;
  write_json(text, out);
  return text;
}

}  // namespace trail::bench
