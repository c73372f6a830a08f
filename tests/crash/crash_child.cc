// trail_crash_child: appends to a ledger under load until it is killed, reporting every
// acknowledged receipt. crash_test.cc runs it and SIGKILLs it at random moments.
//
// Usage: trail_crash_child DATA_DIR KEYS_DIR PROJECT THREADS ROUND SEED
//
// Opens the ledger in DATA_DIR with the keys in KEYS_DIR, then THREADS threads loop forever,
// each appending batches of 1 to 5 events to PROJECT-a or PROJECT-b. A batch mixes new events
// with re-sends: of events this thread already had acknowledged (which must come back as
// duplicates with the original receipt), and of events the child of round ROUND - 1 may or may
// not have committed before it was killed (a client retrying after a crash). Every event's
// content is a pure function of (round, thread, project, counter), so a re-send carries exactly
// the body of the original.
//
// Output: after an append's future resolved OK, one line per receipt on stdout,
//   "<project> <event_id_hex> <seq> <hash_hex>\n",
// each written with a single write(2) (a pipe write of at most PIPE_BUF bytes is atomic, so
// lines of different threads never interleave). Anything else the process prints (logs) is
// sent to stderr so stdout carries receipts only.
// Exit: never by itself on success; 2 on bad usage or setup failure, 3 when an append fails.
#include <sodium.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/envelope.h"
#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "ledger/receipt.h"
#include "projections/case_projector.h"

namespace {

using trail::EventId;
using trail::ledger::EventDraft;
using trail::ledger::Ledger;
using trail::ledger::Receipt;

constexpr int kProjects = 2;
constexpr std::uint64_t kMaxBatch = 5;
// Re-sends of the previous round pick a counter below this; counters that round never reached
// simply append new events.
constexpr std::uint64_t kPreviousRoundCounters = 64;

int receipts_fd = -1;

[[noreturn]] void die(int code, const std::string& message) {
  std::fprintf(stderr, "trail_crash_child: %s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31U);
}

// Which event: the round, thread and project that first produced it, and that thread's counter.
struct DraftRef {
  std::uint64_t round = 0;
  std::uint64_t thread = 0;
  int project = 0;
  std::uint64_t counter = 0;
};

// The draft `ref` names; the same ref always gives the same event id and body.
EventDraft make_draft(const DraftRef& ref) {
  std::uint64_t state = (ref.round << 48U) ^ (ref.thread << 40U) ^
                        (static_cast<std::uint64_t>(ref.project) << 36U) ^ ref.counter;
  splitmix64(state);
  EventDraft d;
  for (std::size_t i = 0; i < d.event_id.size(); i += 8) {
    const std::uint64_t word = splitmix64(state);
    for (std::size_t j = 0; j < 8; ++j) {
      d.event_id[i + j] = static_cast<std::uint8_t>(word >> (8U * j));
    }
  }
  d.event_id[6] = static_cast<std::uint8_t>((d.event_id[6] & 0x0fU) | 0x40U);
  d.event_id[8] = static_cast<std::uint8_t>((d.event_id[8] & 0x3fU) | 0x80U);
  d.kind = trail::schema::Kind::CASE_UPDATED;
  d.actor = "crash-thread-" + std::to_string(ref.thread);
  d.device_id = "crash-round-" + std::to_string(ref.round);
  d.channel = trail::schema::Channel::MOBILE_FORM;
  d.client_time_us =
      1'700'000'000'000'000 + static_cast<std::int64_t>(splitmix64(state) % 1'000'000);
  // One of 16 cases per thread, so the case view folds cases again and again.
  EventId subject{};
  subject[0] = static_cast<std::uint8_t>(ref.thread);
  subject[1] = static_cast<std::uint8_t>(ref.counter % 16);
  subject[2] = static_cast<std::uint8_t>(ref.round);
  subject[15] = 1;
  d.subject = subject;
  const std::size_t pad_bytes = 16 + splitmix64(state) % 480;
  trail::proj::CaseChangeData change;
  change.fields.emplace_back("n", std::to_string(ref.counter));
  change.fields.emplace_back("pad", std::string(pad_bytes, static_cast<char>('a' + ref.counter % 26)));
  d.payload = trail::proj::encode_case_change(change);
  return d;
}

std::string project_name(const std::string& base, int project) {
  return base + (project == 0 ? "-a" : "-b");
}

void write_all(std::string_view line) {
  while (!line.empty()) {
    const ssize_t n = ::write(receipts_fd, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      die(2, "cannot write a receipt line");
    }
    line.remove_prefix(static_cast<std::size_t>(n));
  }
}

void append_forever(Ledger& ledger, const std::string& base, std::uint64_t round,
                    std::uint64_t thread, std::uint64_t threads, std::uint64_t seed) {
  std::mt19937_64 rng{seed ^ (round * 0x100000001b3ULL) ^ (thread * 0x9e3779b97f4a7c15ULL)};
  std::array<std::uint64_t, kProjects> next_counter{};
  std::array<std::vector<DraftRef>, kProjects> acked;  // This thread's acknowledged events.
  std::string line;
  for (;;) {
    const int project = static_cast<int>(rng() % kProjects);
    const std::uint64_t batch = 1 + rng() % kMaxBatch;
    std::vector<EventDraft> drafts;
    std::vector<DraftRef> refs;
    for (std::uint64_t i = 0; i < batch; ++i) {
      const std::uint64_t pick = rng() % 100;
      DraftRef ref;
      if (pick < 15 && !acked[static_cast<std::size_t>(project)].empty()) {
        const auto& mine = acked[static_cast<std::size_t>(project)];
        ref = mine[rng() % mine.size()];
      } else if (pick < 22 && round > 0) {
        ref = DraftRef{round - 1, rng() % threads, project, rng() % kPreviousRoundCounters};
      } else {
        ref = DraftRef{round, thread, project, next_counter[static_cast<std::size_t>(project)]++};
      }
      drafts.push_back(make_draft(ref));
      refs.push_back(ref);
    }
    std::vector<EventId> ids;
    ids.reserve(drafts.size());
    for (const auto& d : drafts) ids.push_back(d.event_id);

    const std::string name = project_name(base, project);
    auto result = ledger.append(name, std::move(drafts)).get();
    if (!result.is_ok()) die(3, "append to " + name + " failed: " + result.status().to_string());
    const std::vector<Receipt>& receipts = *result;
    if (receipts.size() != ids.size()) die(3, "append returned the wrong number of receipts");
    for (std::size_t i = 0; i < receipts.size(); ++i) {
      line.clear();
      line += name;
      line += ' ';
      line += trail::to_hex(ids[i]);
      line += ' ';
      line += std::to_string(receipts[i].seq);
      line += ' ';
      line += trail::to_hex(receipts[i].hash);
      line += '\n';
      write_all(line);
      acked[static_cast<std::size_t>(project)].push_back(refs[i]);
    }
  }
}

std::uint64_t parse_u64(const char* text, const char* what) {
  std::uint64_t value = 0;
  const std::string_view s{text};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || end != s.data() + s.size()) die(2, std::string("bad ") + what);
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) die(2, "usage: trail_crash_child DATA_DIR KEYS_DIR PROJECT THREADS ROUND SEED");
  // Receipts get the pipe; stray output (logs) goes to stderr.
  receipts_fd = ::dup(STDOUT_FILENO);
  if (receipts_fd < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) die(2, "cannot set up stdout");
  if (sodium_init() < 0) die(2, "sodium_init failed");

  const std::string data_dir = argv[1];
  const std::string keys_dir = argv[2];
  const std::string base = argv[3];
  const std::uint64_t threads = parse_u64(argv[4], "THREADS");
  const std::uint64_t round = parse_u64(argv[5], "ROUND");
  const std::uint64_t seed = parse_u64(argv[6], "SEED");
  if (threads == 0 || threads > 256) die(2, "THREADS must be 1..256");

  auto keys = trail::ledger::KeyRing::load(keys_dir);
  if (!keys.is_ok()) die(2, "cannot load keys: " + keys.status().to_string());
  trail::ledger::LedgerOptions options;
  options.data_dir = data_dir;
  options.keys = *keys;
  options.projectors = {std::make_shared<trail::proj::CaseProjector>()};  // Views in the commit.
  auto opened = Ledger::open(options);
  if (!opened.is_ok()) die(2, "cannot open the ledger: " + opened.status().to_string());
  std::unique_ptr<Ledger> ledger = std::move(*opened);

  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (std::uint64_t t = 0; t < threads; ++t) {
    workers.emplace_back(append_forever, std::ref(*ledger), std::cref(base), round, t, threads,
                         seed);
  }
  for (auto& w : workers) w.join();  // Never returns: the workers loop until the kill.
  return 0;
}
