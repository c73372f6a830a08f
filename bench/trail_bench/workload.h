// The requests trail-bench sends: random (v4) UUIDs, event batches in the shape `trailctl
// append` reads (tools/trailctl/event_json.h), and the choice between a read and an append.
//
//   {"events":[{"event_id":"<uuid>","kind":"case.updated","case_id":"<uuid>",
//               "device_id":"trail-bench-7","channel":"api",
//               "client_time":"2026-03-02T08:15:00.000000Z",
//               "fields":{"visit":"123","note0":"<filler>",...}}, ...]}
//
// "actor" is sent only when --actor is given: traild takes the authenticated user as the actor
// and refuses any other. case.created events also carry case_type "bench" and an owner.
//
// Thread safety: a Workload belongs to one thread (it owns a random generator); the case ids
// it is given are shared read-only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/trail_bench/options.h"

namespace trail::bench {

using Uuid = std::array<std::uint8_t, 16>;

// A random version-4 UUID: 122 random bits, so fresh ids never repeat in practice.
Uuid random_uuid(std::mt19937_64& rng);

// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower-case hex.
std::string format_uuid(const Uuid& id);

// `count` distinct random case ids, formatted.
std::vector<std::string> make_case_ids(std::size_t count, std::mt19937_64& rng);

// A generator seeded from std::random_device (several words, so threads never share a stream).
std::mt19937_64 seeded_rng();

inline constexpr std::size_t kFieldValueBytesMax = 4096;  // Filler is split into fields this big.

class Workload {
 public:
  // `case_ids` must outlive the Workload and hold at least one id. `owner` owns the cases that
  // create_batch() makes; empty means --actor, else "trail-bench".
  Workload(const Options& options, std::span<const std::string> case_ids, std::uint64_t seed,
           std::string_view owner = {});

  // Whether the next request is a read (always in read mode, never in append mode).
  bool next_is_read();

  // A case id drawn uniformly from the shared set.
  const std::string& random_case();

  // Replaces `out` with {"events":[...]}: `count` case.updated events with fresh ids, each on
  // a random case of the set (with --own-cases, of connection `connection`'s share of it),
  // from `device`.
  void update_batch(std::string& out, std::size_t count, std::string_view device,
                    std::size_t connection);

  // Replaces `out` with {"events":[...]}: one case.created event per id in `case_ids`.
  void create_batch(std::string& out, std::span<const std::string> case_ids);

 private:
  // Appends one event object to `out`.
  void append_event(std::string& out, std::string_view kind, std::string_view case_id,
                    std::string_view device, std::string_view client_time, bool created);

  const Options& options_;
  std::span<const std::string> case_ids_;
  std::mt19937_64 rng_;
  std::string actor_member_;  // ,"actor":"..." or empty.
  std::string owner_json_;    // The owner as a JSON string literal, quotes included.
  std::string fields_tail_;  // ,"note0":"...",... : the filler fields, the same every time.
};

// Now as RFC 3339 in UTC with microseconds: "2026-03-02T08:15:00.123456Z".
std::string rfc3339_now();

}  // namespace trail::bench
