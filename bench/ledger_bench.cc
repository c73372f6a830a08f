// Micro-benchmarks of the ledger: durable appends (one thread, batched), group commit under
// many concurrent single-event appenders, chain verification, and the primitives they use.
//
// Every ledger benchmark owns a fresh ledger in its own temporary directory on a real disk
// (the system temp directory unless it is a RAM file system; $TRAIL_BENCH_DIR overrides) and
// closes it before returning: LMDB allows one open Ledger per data directory per process.
// Each benchmark has a fixed iteration count or a minimum time, so the whole binary runs in
// about a minute or two.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sodium.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ledger/data_key.h"
#include "ledger/envelope.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "ledger/sha256.h"
#include "ledger/verify.h"
#include "bench/scratch_dir.h"

namespace {

namespace fs = std::filesystem;
using trail::bench::ScratchDir;
using trail::bench::scratch_base;
using trail::Digest;
using trail::EventId;
using trail::ledger::DataKey;
using trail::ledger::EventDraft;
using trail::ledger::KeyRing;
using trail::ledger::Ledger;
using trail::ledger::LedgerOptions;
using trail::ledger::SealedEvent;

constexpr std::size_t kPayloadBytes = 300;
constexpr const char* kProject = "bench";
// Large enough that no benchmark grows the map mid-run (a grow redoes a whole drain).
constexpr std::size_t kMapBytes = std::size_t{1} << 30U;

// ---- Drafts (as tests/support/ledger_fixture.h makes them; bench/ does not depend on tests/) --

EventId random_id() {
  EventId id{};
  randombytes_buf(id.data(), id.size());
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0fU) | 0x40U);
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3fU) | 0x80U);
  return id;
}

// A UUIDv7-style id: 48-bit Unix milliseconds, then a per-process counter, then random bits.
// Ids made close in time sort close together, so their index inserts share B-tree pages.
EventId time_ordered_id() {
  static std::atomic<std::uint32_t> counter{0};
  EventId id{};
  randombytes_buf(id.data(), id.size());
  const auto ms = static_cast<std::uint64_t>(trail::now_us() / 1000);
  for (std::size_t i = 0; i < 6; ++i) {
    id[i] = static_cast<std::uint8_t>((ms >> (8U * (5U - i))) & 0xffU);
  }
  const std::uint32_t c = counter.fetch_add(1, std::memory_order_relaxed);
  id[6] = static_cast<std::uint8_t>(0x70U | ((c >> 8U) & 0x0fU));
  id[7] = static_cast<std::uint8_t>(c & 0xffU);
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3fU) | 0x80U);
  return id;
}

enum class Ids { kRandomV4, kTimeOrderedV7 };

EventDraft make_draft(std::size_t payload_bytes = kPayloadBytes, Ids ids = Ids::kRandomV4) {
  EventDraft d;
  d.event_id = ids == Ids::kRandomV4 ? random_id() : time_ordered_id();
  d.kind = trail::schema::Kind::CASE_UPDATED;
  d.actor = "chw-017";
  d.device_id = "phone-a3";
  d.channel = trail::schema::Channel::MOBILE_FORM;
  d.client_time_us = 1'700'000'000'000'000;
  d.subject = random_id();
  d.payload.assign(payload_bytes, 'p');
  for (std::size_t i = 0; i < payload_bytes; ++i) d.payload[i] = static_cast<char>('a' + i % 26);
  return d;
}

std::vector<EventDraft> make_drafts(std::size_t count, Ids ids = Ids::kRandomV4) {
  std::vector<EventDraft> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(make_draft(kPayloadBytes, ids));
  return out;
}

// ---- A fresh, open ledger ----

// Commits LMDB has made so far in this environment (its last transaction id).
std::uint64_t commits_so_far(const Ledger& ledger) {
  MDB_envinfo info{};
  mdb_env_info(ledger.env().raw(), &info);
  return static_cast<std::uint64_t>(info.me_last_txnid);
}

struct FreshLedger {
  ScratchDir dir;
  std::shared_ptr<const KeyRing> keys;
  std::unique_ptr<Ledger> ledger;
  std::string error;

  // Creates keys and ledger, opens it and appends one event so that the project's data key
  // exists (the first append of a project creates it in a commit of its own).
  bool init() {
    if (sodium_init() < 0) return fail("sodium_init failed");
    if (auto s = KeyRing::create(dir.keys(), "bench-key"); !s.is_ok()) return fail(s.to_string());
    auto loaded = KeyRing::load(dir.keys());
    if (!loaded.is_ok()) return fail(loaded.status().to_string());
    keys = *loaded;
    if (auto s = Ledger::create(dir.data(), *keys, kMapBytes); !s.is_ok()) {
      return fail(s.to_string());
    }
    LedgerOptions options;
    options.data_dir = dir.data();
    options.keys = keys;
    options.initial_map_bytes = kMapBytes;
    // TRAIL_BENCH_NO_TREES=1 measures appends without the Merkle trees (their cost).
    options.merkle_trees = std::getenv("TRAIL_BENCH_NO_TREES") == nullptr;
    auto opened = Ledger::open(options);
    if (!opened.is_ok()) return fail(opened.status().to_string());
    ledger = std::move(*opened);
    auto warm = ledger->append(kProject, make_drafts(1)).get();
    if (!warm.is_ok()) return fail(warm.status().to_string());
    return true;
  }
  bool fail(std::string why) {
    error = std::move(why);
    return false;
  }
};

// ---- Durable appends ----

// Commit counters every append benchmark reports.
void report_commits(benchmark::State& state, const Ledger& ledger, std::uint64_t commits_before,
                    std::int64_t events) {
  const auto commits = static_cast<double>(commits_so_far(ledger) - commits_before);
  state.SetItemsProcessed(events);
  state.counters["commits/s"] = benchmark::Counter(commits, benchmark::Counter::kIsRate);
  state.counters["ev/commit"] = commits > 0 ? static_cast<double>(events) / commits : 0.0;
}

// One thread appends batches of state.range(0) events and waits for each to be durable before
// sending the next: every batch is one commit.
void append_batches(benchmark::State& state, Ids ids) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  FreshLedger fx;
  if (!fx.init()) {
    state.SkipWithError(fx.error.c_str());
    return;
  }
  const std::uint64_t commits_before = commits_so_far(*fx.ledger);
  std::vector<EventDraft> drafts = make_drafts(batch, ids);
  for (auto _ : state) {
    auto result = fx.ledger->append(kProject, std::move(drafts)).get();
    state.PauseTiming();  // Building the next batch is the caller's work, not the ledger's.
    if (!result.is_ok()) {
      state.SkipWithError(result.status().to_string().c_str());
      break;
    }
    drafts = make_drafts(batch, ids);
    state.ResumeTiming();
  }
  report_commits(state, *fx.ledger, commits_before, state.iterations() * state.range(0));
  fx.ledger.reset();
}

void BM_AppendBatch(benchmark::State& state) { append_batches(state, Ids::kRandomV4); }
BENCHMARK(BM_AppendBatch)->Arg(1)->Iterations(500)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AppendBatch)->Arg(10)->Iterations(500)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AppendBatch)->Arg(100)->Iterations(300)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AppendBatch)->Arg(1000)->Iterations(120)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same with time-ordered (UUIDv7-style) event ids: shows what the random-id index costs.
void BM_AppendBatchTimeOrderedIds(benchmark::State& state) {
  append_batches(state, Ids::kTimeOrderedV7);
}
BENCHMARK(BM_AppendBatchTimeOrderedIds)
    ->Arg(1000)
    ->Iterations(120)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One thread keeps state.range(1) batches of state.range(0) events in flight: sealing the next
// batch overlaps the commit of the previous ones, and queued batches share commits.
// state.range(2) != 0: time-ordered ids.
void BM_AppendBatchPipelined(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto depth = static_cast<std::size_t>(state.range(1));
  const Ids ids = state.range(2) != 0 ? Ids::kTimeOrderedV7 : Ids::kRandomV4;
  FreshLedger fx;
  if (!fx.init()) {
    state.SkipWithError(fx.error.c_str());
    return;
  }
  const std::uint64_t commits_before = commits_so_far(*fx.ledger);
  std::deque<std::future<trail::Result<std::vector<trail::ledger::Receipt>>>> in_flight;
  std::vector<EventDraft> drafts = make_drafts(batch, ids);
  bool failed = false;
  benchmark::IterationCount done = 0;
  for (auto _ : state) {
    in_flight.push_back(fx.ledger->append(kProject, std::move(drafts)));
    ++done;
    // Wait for the oldest once `depth` are in flight, and for all of them at the end.
    while (!in_flight.empty() && (in_flight.size() >= depth || done == state.max_iterations)) {
      failed = failed || !in_flight.front().get().is_ok();
      in_flight.pop_front();
    }
    state.PauseTiming();
    drafts = make_drafts(batch, ids);
    state.ResumeTiming();
  }
  if (failed) state.SkipWithError("some appends failed");
  report_commits(state, *fx.ledger, commits_before, state.iterations() * state.range(0));
  fx.ledger.reset();
}
BENCHMARK(BM_AppendBatchPipelined)
    ->ArgNames({"batch", "in_flight", "v7ids"})
    ->Args({1000, 4, 0})
    ->Args({1000, 4, 1})
    ->Iterations(120)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// state.range(0) threads each append state.range(1) single-event batches, one at a time, each
// waiting for its own commit: the writer's group commit is what makes this scale.
// state.range(2) != 0: time-ordered ids.
void BM_ConcurrentAppenders(benchmark::State& state) {
  const auto threads = static_cast<std::size_t>(state.range(0));
  const auto per_thread = static_cast<std::size_t>(state.range(1));
  const Ids ids = state.range(2) != 0 ? Ids::kTimeOrderedV7 : Ids::kRandomV4;
  FreshLedger fx;
  if (!fx.init()) {
    state.SkipWithError(fx.error.c_str());
    return;
  }
  const std::uint64_t commits_before = commits_so_far(*fx.ledger);
  std::atomic<std::uint64_t> failures{0};
  Ledger& ledger = *fx.ledger;
  for (auto _ : state) {
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (std::size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&ledger, &failures, per_thread, ids] {
        for (std::size_t i = 0; i < per_thread; ++i) {
          std::vector<EventDraft> one;
          one.push_back(make_draft(kPayloadBytes, ids));
          if (!ledger.append(kProject, std::move(one)).get().is_ok()) {
            failures.fetch_add(1, std::memory_order_relaxed);
          }
        }
      });
    }
    for (auto& thread : pool) thread.join();
  }
  if (failures.load() != 0) state.SkipWithError("some appends failed");
  report_commits(state, *fx.ledger, commits_before,
                 state.iterations() * state.range(0) * state.range(1));
  fx.ledger.reset();
}
BENCHMARK(BM_ConcurrentAppenders)
    ->ArgNames({"threads", "each", "v7ids"})
    ->Args({1, 600, 0})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConcurrentAppenders)
    ->ArgNames({"threads", "each", "v7ids"})
    ->Args({16, 250, 0})
    ->Iterations(3)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConcurrentAppenders)
    ->ArgNames({"threads", "each", "v7ids"})
    ->Args({64, 100, 0})
    ->Args({64, 100, 1})
    ->Iterations(5)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- Verification ----

constexpr std::size_t kVerifyEvents = 200'000;
constexpr std::size_t kVerifyBatch = 1'000;

// One chain of kVerifyEvents events, built on first use and shared by the BM_Verify runs.
// Closed after building; each run opens it itself. Removed by main() after the run.
struct VerifyChain {
  FreshLedger fx;
  bool ok = false;
};
std::unique_ptr<VerifyChain>& verify_chain_slot() {
  static std::unique_ptr<VerifyChain> chain;
  return chain;
}

VerifyChain& verify_chain() {
  auto& slot = verify_chain_slot();
  if (slot) return *slot;
  slot = std::make_unique<VerifyChain>();
  VerifyChain& chain = *slot;
  if (!chain.fx.init()) return chain;
  // Keep a few batches in flight so that building does not wait for every commit.
  std::deque<std::future<trail::Result<std::vector<trail::ledger::Receipt>>>> in_flight;
  std::size_t appended = 1;  // init() appended one.
  while (appended < kVerifyEvents) {
    const std::size_t n = std::min(kVerifyBatch, kVerifyEvents - appended);
    in_flight.push_back(chain.fx.ledger->append(kProject, make_drafts(n)));
    appended += n;
    if (in_flight.size() >= 8) {
      if (auto r = in_flight.front().get(); !r.is_ok()) chain.fx.error = r.status().to_string();
      in_flight.pop_front();
    }
  }
  for (auto& f : in_flight) {
    if (auto r = f.get(); !r.is_ok()) chain.fx.error = r.status().to_string();
  }
  chain.fx.ledger.reset();  // Close it: each run opens its own.
  chain.ok = chain.fx.error.empty();
  return chain;
}

// state.range(0): 0 opens the ledger without keys (hash chain only), 1 with keys (every
// payload's AEAD tag checked too).
void BM_Verify(benchmark::State& state) {
  VerifyChain& chain = verify_chain();
  if (!chain.ok) {
    state.SkipWithError(("building the chain failed: " + chain.fx.error).c_str());
    return;
  }
  LedgerOptions options;
  options.data_dir = chain.fx.dir.data();
  options.keys = state.range(0) != 0 ? chain.fx.keys : nullptr;
  options.initial_map_bytes = kMapBytes;
  auto opened = Ledger::open(options);
  if (!opened.is_ok()) {
    state.SkipWithError(opened.status().to_string().c_str());
    return;
  }
  std::unique_ptr<Ledger> ledger = std::move(*opened);
  std::uint64_t events = 0;
  for (auto _ : state) {
    auto report = trail::ledger::verify(*ledger, {});
    if (!report.is_ok() || report->problem || report->events != kVerifyEvents) {
      state.SkipWithError("verification failed");
      break;
    }
    events += report->events;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.SetLabel(state.range(0) != 0 ? "chain+payload tags" : "chain only");
  ledger.reset();
}
BENCHMARK(BM_Verify)
    ->ArgName("keys")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(3)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- Primitives, for context ----

// A data key and an event sealed with it, as Ledger::seal_all makes one.
struct Sealing {
  trail::ledger::SecretKey secret;
  std::unique_ptr<DataKey> key;
  EventDraft draft = make_draft();
  SealedEvent sealed;
  std::string body;
  std::string aad;

  Sealing() {
    if (sodium_init() < 0) std::abort();
    randombytes_buf(secret.data(), secret.size());
    key = std::make_unique<DataKey>(1, secret);
    trail::ledger::encode_body(kProject, draft, body);
    sealed.body_mac = key->mac(trail::as_bytes(body));
    sealed.key_id = key->id();
    sealed.cipher = key->cipher();
    trail::ledger::encode_aad(kProject, draft, sealed.key_id, sealed.cipher, aad);
    key->seal(trail::as_bytes(aad), trail::as_bytes(draft.payload), sealed.nonce,
              sealed.ciphertext);
    sealed.header = draft;
    sealed.header.payload.clear();
  }
};

Digest some_hash() {
  Digest d{};
  randombytes_buf(d.data(), d.size());
  return d;
}

void BM_EncodeEnvelope(benchmark::State& state) {
  Sealing s;
  const Digest prev = some_hash();
  std::uint64_t seq = 1;
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto words = trail::ledger::encode_envelope(kProject, seq++, prev, trail::now_us(), s.sealed);
    bytes = words.asBytes().size();
    benchmark::DoNotOptimize(words.begin());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["envelope_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EncodeEnvelope)->MinTime(0.5);

void BM_DecodeEnvelope(benchmark::State& state) {
  Sealing s;
  const auto words = trail::ledger::encode_envelope(kProject, 42, some_hash(), trail::now_us(),
                                                    s.sealed);
  const auto bytes = words.asBytes();
  trail::ledger::DecodedEnvelope out;
  for (auto _ : state) {
    auto status = trail::ledger::decode_envelope({bytes.begin(), bytes.size()}, out);
    benchmark::DoNotOptimize(status);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeEnvelope)->MinTime(0.5);

void BM_LeafHash(benchmark::State& state) {
  Sealing s;
  const auto words = trail::ledger::encode_envelope(kProject, 42, some_hash(), trail::now_us(),
                                                    s.sealed);
  const auto bytes = words.asBytes();
  for (auto _ : state) {
    Digest d = trail::leaf_hash({bytes.begin(), bytes.size()});
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
  state.counters["envelope_bytes"] = static_cast<double>(bytes.size());
}
BENCHMARK(BM_LeafHash)->MinTime(0.5);

// One interior Merkle node (RFC 6962): the tree's per-event hashing cost in the writer.
void BM_NodeHash(benchmark::State& state) {
  Digest left = some_hash();
  const Digest right = some_hash();
  for (auto _ : state) {
    left = trail::node_hash(left, right);
    benchmark::DoNotOptimize(left);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NodeHash)->MinTime(0.5);

void BM_DataKeySeal(benchmark::State& state) {
  Sealing s;
  const std::string plain(static_cast<std::size_t>(state.range(0)), 'p');
  std::string nonce;
  std::string sealed;
  for (auto _ : state) {
    s.key->seal(trail::as_bytes(s.aad), trail::as_bytes(plain), nonce, sealed);
    benchmark::DoNotOptimize(sealed.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetLabel(std::string(trail::ledger::cipher_name(s.key->cipher())));
}
BENCHMARK(BM_DataKeySeal)->Arg(300)->MinTime(0.5);

void BM_DataKeyOpen(benchmark::State& state) {
  Sealing s;
  std::string plain;
  for (auto _ : state) {
    auto status = s.key->open(s.sealed.cipher, trail::as_bytes(s.sealed.nonce),
                              trail::as_bytes(s.aad), trail::as_bytes(s.sealed.ciphertext), plain);
    benchmark::DoNotOptimize(status);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DataKeyOpen)->MinTime(0.5);

// The body fingerprint (keyed BLAKE2b of header || payload) that idempotency compares.
void BM_DataKeyMac(benchmark::State& state) {
  Sealing s;
  for (auto _ : state) {
    Digest d = s.key->mac(trail::as_bytes(s.body));
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DataKeyMac)->MinTime(0.5);

// The nonce source DataKey::seal and random_id use.
void BM_RandomBytes24(benchmark::State& state) {
  if (sodium_init() < 0) std::abort();
  unsigned char buf[24];
  for (auto _ : state) {
    randombytes_buf(buf, sizeof buf);
    benchmark::DoNotOptimize(buf);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RandomBytes24)->MinTime(0.5);

// Everything Ledger::seal_all does for one draft (validate, body MAC, AAD, seal), copying the
// draft instead of consuming it.
void BM_SealOneEvent(benchmark::State& state) {
  Sealing s;
  std::string scratch;
  SealedEvent out;
  for (auto _ : state) {
    EventDraft d = s.draft;
    if (!trail::ledger::validate_draft(d).is_ok()) std::abort();
    trail::ledger::encode_body(kProject, d, scratch);
    out.body_mac = s.key->mac(trail::as_bytes(scratch));
    out.key_id = s.key->id();
    out.cipher = s.key->cipher();
    trail::ledger::encode_aad(kProject, d, out.key_id, out.cipher, scratch);
    s.key->seal(trail::as_bytes(scratch), trail::as_bytes(d.payload), out.nonce, out.ciphertext);
    d.payload.clear();
    out.header = std::move(d);
    benchmark::DoNotOptimize(out.ciphertext.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SealOneEvent)->MinTime(0.5);

// The disk's durable-write latency, which bounds commits/s: 4 KiB written, then fdatasync.
// (An LMDB commit syncs twice: data pages, then the meta page.)
void BM_DiskWriteSync(benchmark::State& state) {
  ScratchDir dir;
  const fs::path file = dir.data().string() + ".sync";
  const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY, 0600);
  if (fd < 0) {
    state.SkipWithError("cannot create the sync test file");
    return;
  }
  std::string page(4096, 'x');
  off_t offset = 0;
  for (auto _ : state) {
    if (::pwrite(fd, page.data(), page.size(), offset) != static_cast<ssize_t>(page.size()) ||
        ::fdatasync(fd) != 0) {
      state.SkipWithError("write or fdatasync failed");
      break;
    }
    offset = (offset + 4096) % (1 << 20);
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DiskWriteSync)->Iterations(500)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("scratch_dir", scratch_base().string());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  verify_chain_slot().reset();  // Removes the shared verification chain's directory.
  return 0;
}
