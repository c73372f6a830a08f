// Benchmarks of the views: appends with the case view folded in the commit against the bare
// ledger, rebuild speed, and the latency of a case's history.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bench/scratch_dir.h"
#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "projections/case_payload.h"
#include "projections/case_projector.h"

namespace {

using trail::EventId;
using trail::bench::ScratchDir;
using trail::ledger::EventDraft;
using trail::ledger::Ledger;

constexpr const char* kProject = "bench";
constexpr std::size_t kMapBytes = std::size_t{1} << 30U;

EventId random_id() {
  EventId id{};
  randombytes_buf(id.data(), id.size());
  return id;
}

// A case.updated event of ~300 bytes of payload: five fields.
EventDraft case_event(const EventId& case_id, int n) {
  EventDraft d;
  d.event_id = random_id();
  d.kind = trail::schema::Kind::CASE_UPDATED;
  d.actor = "chw-" + std::to_string(n % 50);
  d.device_id = "phone-a3";
  d.channel = trail::schema::Channel::MOBILE_FORM;
  d.client_time_us = 1'700'000'000'000'000;
  d.subject = case_id;
  trail::proj::CaseChangeData change;
  for (int f = 0; f < 5; ++f) {
    change.fields.emplace_back("field_" + std::to_string(f),
                               "value " + std::to_string(n) + std::string(30, 'x'));
  }
  d.payload = trail::proj::encode_case_change(change);
  return d;
}

struct Fixture {
  ScratchDir dir;
  std::shared_ptr<trail::proj::CaseProjector> view = std::make_shared<trail::proj::CaseProjector>();
  std::unique_ptr<Ledger> ledger;

  bool open(bool with_view) {
    if (sodium_init() < 0) return false;
    if (!trail::ledger::KeyRing::create(dir.keys(), "bench").is_ok()) return false;
    auto keys = trail::ledger::KeyRing::load(dir.keys());
    if (!keys.is_ok() || !Ledger::create(dir.data(), **keys, kMapBytes).is_ok()) return false;
    trail::ledger::LedgerOptions options;
    options.data_dir = dir.data();
    options.keys = *keys;
    options.initial_map_bytes = kMapBytes;
    if (with_view) options.projectors = {view};
    auto opened = Ledger::open(options);
    if (!opened.is_ok()) return false;
    ledger = std::move(*opened);
    return true;
  }
};

// 1000-event batches over 2000 cases, with the case view (arg 1) or without it (arg 0).
void BM_AppendCaseEvents(benchmark::State& state) {
  Fixture f;
  if (!f.open(state.range(0) != 0)) {
    state.SkipWithError("cannot open a ledger");
    return;
  }
  std::vector<EventId> cases(2000);
  for (auto& c : cases) c = random_id();
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<EventDraft> batch;
    batch.reserve(1000);
    for (int i = 0; i < 1000; ++i, ++n) {
      batch.push_back(case_event(cases[static_cast<std::size_t>(n) % cases.size()], n));
    }
    state.ResumeTiming();
    auto r = f.ledger->append(kProject, std::move(batch)).get();
    if (!r.is_ok()) state.SkipWithError(r.status().to_string().c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 1000);
  state.SetLabel(state.range(0) != 0 ? "with case view" : "bare ledger");
}
BENCHMARK(BM_AppendCaseEvents)->Arg(0)->Arg(1)->Iterations(60)->UseRealTime()->Unit(benchmark::kMillisecond);

// Rebuild of the case view from a chain of 100,000 case events.
void BM_Rebuild(benchmark::State& state) {
  Fixture f;
  if (!f.open(true)) {
    state.SkipWithError("cannot open a ledger");
    return;
  }
  std::vector<EventId> cases(5000);
  for (auto& c : cases) c = random_id();
  constexpr int kEvents = 100'000;
  for (int n = 0; n < kEvents;) {
    std::vector<EventDraft> batch;
    for (int i = 0; i < 5000; ++i, ++n) {
      batch.push_back(case_event(cases[static_cast<std::size_t>(n) % cases.size()], n));
    }
    if (!f.ledger->append(kProject, std::move(batch)).get().is_ok()) {
      state.SkipWithError("append failed");
      return;
    }
  }
  for (auto _ : state) {
    if (!f.ledger->rebuild_projections({}).is_ok()) state.SkipWithError("rebuild failed");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kEvents);
}
BENCHMARK(BM_Rebuild)->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// History of one case with 100 changes, among 20,000 other events: latency percentiles.
void BM_CaseHistory(benchmark::State& state) {
  Fixture f;
  if (!f.open(true)) {
    state.SkipWithError("cannot open a ledger");
    return;
  }
  const EventId target = random_id();
  std::vector<EventId> others(2000);
  for (auto& c : others) c = random_id();
  int n = 0;
  for (int b = 0; b < 100; ++b) {
    std::vector<EventDraft> batch{case_event(target, n++)};
    for (int i = 0; i < 200; ++i, ++n) {
      batch.push_back(case_event(others[static_cast<std::size_t>(n) % others.size()], n));
    }
    if (!f.ledger->append(kProject, std::move(batch)).get().is_ok()) {
      state.SkipWithError("append failed");
      return;
    }
  }
  trail::proj::HistoryFilter filter;
  filter.case_id = target;
  std::vector<double> micros;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto h = f.view->history(*f.ledger, kProject, filter, 0);
    const auto end = std::chrono::steady_clock::now();
    if (!h.is_ok() || h->size() != 100) state.SkipWithError("wrong history");
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  std::sort(micros.begin(), micros.end());
  if (!micros.empty()) {
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[micros.size() * 99 / 100];
  }
}
BENCHMARK(BM_CaseHistory)->Iterations(2000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
