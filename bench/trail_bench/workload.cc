#include "bench/trail_bench/workload.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <unordered_set>

#include <boost/json.hpp>

#include "bench/trail_bench/check.h"

namespace trail::bench {

Uuid random_uuid(std::mt19937_64& rng) {
  Uuid id{};
  const std::uint64_t hi = rng();
  const std::uint64_t lo = rng();
  for (std::size_t i = 0; i < 8; ++i) {
    id[i] = static_cast<std::uint8_t>(hi >> (8U * (7U - i)));
    id[8 + i] = static_cast<std::uint8_t>(lo >> (8U * (7U - i)));
  }
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0fU) | 0x40U);  // Version 4.
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3fU) | 0x80U);  // RFC 4122 variant.
  return id;
}

// RFC 9562 version 7: 48 bits of Unix milliseconds, then random bits.
Uuid time_ordered_uuid(std::mt19937_64& rng) {
  Uuid id = random_uuid(rng);
  const auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::system_clock::now().time_since_epoch())
                                                 .count());
  for (std::size_t i = 0; i < 6; ++i) id[i] = static_cast<std::uint8_t>(ms >> (8U * (5U - i)));
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0fU) | 0x70U);  // Version 7.
  return id;
}

std::string format_uuid(const Uuid& id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[id[i] >> 4U]);
    out.push_back(kHex[id[i] & 0x0fU]);
  }
  TRAIL_BENCH_CHECK(out.size() == 36);
  return out;
}

std::vector<std::string> make_case_ids(std::size_t count, std::mt19937_64& rng) {
  std::vector<std::string> ids;
  ids.reserve(count);
  std::unordered_set<std::string> seen;
  while (ids.size() < count) {
    std::string id = format_uuid(random_uuid(rng));
    if (seen.insert(id).second) ids.push_back(std::move(id));
  }
  return ids;
}

std::mt19937_64 seeded_rng() {
  std::random_device device;
  std::seed_seq seq{device(), device(), device(), device(), device(), device(), device(), device()};
  return std::mt19937_64{seq};
}

std::string rfc3339_now() {
  const auto now = std::chrono::system_clock::now();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(us.count() / 1'000'000);
  const auto fraction = static_cast<long>(us.count() % 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[40];
  const int n =
      std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fraction);
  TRAIL_BENCH_CHECK(n == 27);
  return std::string(text, static_cast<std::size_t>(n));
}

namespace {

// Filler fields that make the "fields" object about `payload_bytes` long in JSON.
std::string make_fields_tail(std::size_t payload_bytes, std::mt19937_64& rng) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  constexpr std::size_t kFixedBytes = 24;          // {"visit":"123456"} and the braces.
  constexpr std::size_t kFieldOverheadBytes = 12;  // ,"note12":"" around each value.
  std::string tail;
  std::size_t remaining = payload_bytes > kFixedBytes ? payload_bytes - kFixedBytes : 0;
  for (std::size_t index = 0; remaining > kFieldOverheadBytes; ++index) {
    const std::size_t value_bytes = std::min(remaining - kFieldOverheadBytes, kFieldValueBytesMax);
    tail += ",\"note" + std::to_string(index) + "\":\"";
    for (std::size_t i = 0; i < value_bytes; ++i) {
      tail.push_back(kAlphabet[rng() % (sizeof kAlphabet - 1)]);
    }
    tail += '"';
    remaining -= value_bytes + kFieldOverheadBytes;
  }
  return tail;
}

}  // namespace

Workload::Workload(const Options& options, std::span<const std::string> case_ids,
                   std::uint64_t seed, std::string_view owner)
    : options_{options}, case_ids_{case_ids}, rng_{seed} {
  TRAIL_BENCH_CHECK(!case_ids_.empty());
  const auto quoted = [](std::string_view text) {
    return boost::json::serialize(boost::json::string(text));
  };
  if (!options.actor.empty()) actor_member_ = ",\"actor\":" + quoted(options.actor);
  if (owner.empty()) owner = options.actor.empty() ? "trail-bench" : options.actor;
  owner_json_ = quoted(owner);
  fields_tail_ = make_fields_tail(options.payload_bytes, rng_);
}

bool Workload::next_is_read() {
  switch (options_.mode) {
    case Mode::kAppend:
      return false;
    case Mode::kRead:
      return true;
    case Mode::kMixed:
      return rng_() % 100 < options_.read_percent;
  }
  return false;
}

const std::string& Workload::random_case() {
  return case_ids_[static_cast<std::size_t>(rng_() % case_ids_.size())];
}

void Workload::update_batch(std::string& out, std::size_t count, std::string_view device,
                            std::size_t connection) {
  TRAIL_BENCH_CHECK(count >= 1);
  // --own-cases: connection c updates cases [c*share, (c+1)*share) only.
  std::span<const std::string> cases = case_ids_;
  if (options_.own_cases) {
    const std::size_t share = case_ids_.size() / options_.connections;
    TRAIL_BENCH_CHECK(share >= 1 && connection < options_.connections);
    cases = case_ids_.subspan(connection * share, share);
  }
  const std::string client_time = rfc3339_now();
  out.clear();
  out += "{\"events\":[";
  for (std::size_t i = 0; i < count; ++i) {
    if (i != 0) out.push_back(',');
    const std::string& case_id = cases[static_cast<std::size_t>(rng_() % cases.size())];
    append_event(out, "case.updated", case_id, device, client_time, false);
  }
  out += "]}";
}

void Workload::create_batch(std::string& out, std::span<const std::string> case_ids) {
  TRAIL_BENCH_CHECK(!case_ids.empty());
  const std::string client_time = rfc3339_now();
  out.clear();
  out += "{\"events\":[";
  for (std::size_t i = 0; i < case_ids.size(); ++i) {
    if (i != 0) out.push_back(',');
    append_event(out, "case.created", case_ids[i], "trail-bench-setup", client_time, true);
  }
  out += "]}";
}

void Workload::append_event(std::string& out, std::string_view kind, std::string_view case_id,
                            std::string_view device, std::string_view client_time, bool created) {
  out += "{\"event_id\":\"";
  out += format_uuid(options_.v7_ids ? time_ordered_uuid(rng_) : random_uuid(rng_));
  out += "\",\"kind\":\"";
  out += kind;
  out += "\",\"case_id\":\"";
  out += case_id;
  out += '"';
  out += actor_member_;
  out += ",\"device_id\":\"";
  out += device;  // Made by trail-bench from [a-z0-9-] only.
  out += "\",\"channel\":\"api\",\"client_time\":\"";
  out += client_time;
  out += '"';
  if (created) {
    out += ",\"case_type\":\"bench\",\"case_name\":\"bench case\",\"owner\":";
    out += owner_json_;
  }
  out += ",\"fields\":{\"visit\":\"";
  out += std::to_string(rng_() % 1'000'000);
  out += '"';
  out += fields_tail_;
  out += "}}";
}

}  // namespace trail::bench
