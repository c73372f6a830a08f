// Appends: chaining, sequence numbers, idempotency, conflicts, batch atomicity, map growth.
#include <gtest/gtest.h>

#include <future>
#include <set>
#include <thread>

#include "ledger/internal/lmdb_env.h"
#include "ledger/sha256.h"
#include "ledger/verify.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using ledger::EventDraft;
using ledger::Receipt;

class Chain : public LedgerTest {};

TEST_F(Chain, AssignsDenseSeqAndLinksEachEventToThePrevious) {
  auto receipts = append_ok("clinic-a", make_drafts(5));
  ASSERT_EQ(receipts.size(), 5U);
  Digest prev{};
  for (std::uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(receipts[i].seq, i + 1);
    EXPECT_FALSE(receipts[i].duplicate);
    auto stored = ledger_->read("clinic-a", i + 1);
    ASSERT_TRUE(stored.is_ok());
    EXPECT_EQ(stored->hash, receipts[i].hash);
    EXPECT_EQ(leaf_hash(as_bytes(stored->envelope)), receipts[i].hash);
    auto opened = ledger_->open_event(*stored);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    EXPECT_EQ(opened->envelope.prev_hash, prev);
    EXPECT_EQ(opened->envelope.seq, i + 1);
    prev = receipts[i].hash;
  }
  auto head = ledger_->head("clinic-a");
  ASSERT_TRUE(head.is_ok());
  EXPECT_EQ(head->seq, 5U);
  EXPECT_EQ(head->hash, receipts.back().hash);
}

TEST_F(Chain, ContinuesAcrossBatchesAndReopen) {
  append_ok("p", make_drafts(3));
  reopen();
  auto more = append_ok("p", make_drafts(2));
  ASSERT_EQ(more.size(), 2U);
  EXPECT_EQ(more[0].seq, 4U);
  EXPECT_EQ(more[1].seq, 5U);
  auto fourth = ledger_->open_event(*ledger_->read("p", 4));
  ASSERT_TRUE(fourth.is_ok());
  EXPECT_EQ(fourth->envelope.prev_hash, ledger_->read("p", 3)->hash);
}

TEST_F(Chain, ProjectsHaveIndependentChains) {
  append_ok("a", make_drafts(3));
  auto b = append_ok("b", make_drafts(2));
  EXPECT_EQ(b[0].seq, 1U);
  auto projects = ledger_->projects();
  ASSERT_TRUE(projects.is_ok());
  EXPECT_EQ(*projects, (std::vector<std::string>{"a", "b"}));
  auto first_b = ledger_->open_event(*ledger_->read("b", 1));
  ASSERT_TRUE(first_b.is_ok());
  EXPECT_EQ(first_b->envelope.prev_hash, Digest{});
}

TEST_F(Chain, PayloadAndHeaderRoundTrip) {
  EventDraft d = make_draft(1000);
  d.via = random_id();
  d.kind = schema::Kind::CASE_CLOSED;
  d.channel = schema::Channel::WEB;
  d.client_time_us = -5;  // Device clocks can be anything; stored as reported.
  const EventDraft copy = d;
  append_ok("p", {d});
  auto opened = ledger_->open_event(*ledger_->read("p", 1));
  ASSERT_TRUE(opened.is_ok());
  const auto& e = opened->envelope;
  EXPECT_EQ(opened->payload, copy.payload);
  EXPECT_EQ(e.event_id, copy.event_id);
  EXPECT_EQ(e.kind, schema::Kind::CASE_CLOSED);
  EXPECT_EQ(e.channel, schema::Channel::WEB);
  EXPECT_EQ(e.actor, copy.actor);
  EXPECT_EQ(e.device_id, copy.device_id);
  EXPECT_EQ(e.via, copy.via);
  EXPECT_EQ(e.subject, copy.subject);
  EXPECT_EQ(e.client_time_us, -5);
  EXPECT_EQ(e.project, "p");
  EXPECT_GT(e.server_time_us, 0);
}

TEST_F(Chain, ServerTimeNeverDecreases) {
  for (int i = 0; i < 5; ++i) append_ok("p", make_drafts(3));
  TimeUs last = 0;
  ASSERT_TRUE(ledger_->scan("p", 1, 0, [&](const ledger::StoredEvent& s) {
    auto opened = ledger_->open_event(s);
    EXPECT_TRUE(opened.is_ok());
    EXPECT_GE(opened->envelope.server_time_us, last);
    last = opened->envelope.server_time_us;
    return true;
  }).is_ok());
}

TEST_F(Chain, ResendingAnEventReturnsTheOriginalReceiptAndAppendsNothing) {
  auto drafts = make_drafts(3);
  auto first = append_ok("p", drafts);
  auto again = append_ok("p", drafts);
  ASSERT_EQ(again.size(), 3U);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(again[i].duplicate);
    EXPECT_EQ(again[i].seq, first[i].seq);
    EXPECT_EQ(again[i].hash, first[i].hash);
  }
  EXPECT_EQ(ledger_->head("p")->seq, 3U);
}

TEST_F(Chain, ResendAfterReopenIsStillADuplicate) {
  auto drafts = make_drafts(2);
  auto first = append_ok("p", drafts);
  reopen();
  auto again = append_ok("p", drafts);
  EXPECT_TRUE(again[1].duplicate);
  EXPECT_EQ(again[1].hash, first[1].hash);
  EXPECT_EQ(ledger_->head("p")->seq, 2U);
}

TEST_F(Chain, MixedBatchAppendsOnlyTheNewEvents) {
  auto old_events = make_drafts(2);
  append_ok("p", old_events);
  std::vector<EventDraft> mixed{old_events[0], make_draft(), old_events[1], make_draft()};
  auto r = append_ok("p", mixed);
  EXPECT_TRUE(r[0].duplicate);
  EXPECT_EQ(r[0].seq, 1U);
  EXPECT_FALSE(r[1].duplicate);
  EXPECT_EQ(r[1].seq, 3U);
  EXPECT_TRUE(r[2].duplicate);
  EXPECT_EQ(r[3].seq, 4U);
}

TEST_F(Chain, SameEventTwiceInOneBatchIsAppendedOnce) {
  EventDraft d = make_draft();
  auto r = append_ok("p", {d, d});
  EXPECT_FALSE(r[0].duplicate);
  EXPECT_TRUE(r[1].duplicate);
  EXPECT_EQ(r[0].seq, r[1].seq);
  EXPECT_EQ(ledger_->head("p")->seq, 1U);
}

TEST_F(Chain, SameEventIdWithAnotherBodyIsAConflict) {
  EventDraft d = make_draft();
  append_ok("p", {d});
  EventDraft changed = d;
  changed.payload[0] = 'X';
  auto r = ledger_->append("p", {changed}).get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EventDraft other_actor = d;
  other_actor.actor = "someone-else";
  r = ledger_->append("p", {other_actor}).get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EXPECT_EQ(ledger_->head("p")->seq, 1U);
}

TEST_F(Chain, SameEventIdInAnotherProjectIsIndependent) {
  EventDraft d = make_draft();
  append_ok("p", {d});
  auto r = append_ok("q", {d});
  EXPECT_FALSE(r[0].duplicate);
}

TEST_F(Chain, ConflictingBatchAppendsNothingAtAll) {
  EventDraft d = make_draft();
  append_ok("p", {d});
  EventDraft changed = d;
  changed.payload += "!";
  auto batch = make_drafts(4);
  batch.insert(batch.begin() + 2, changed);  // The conflict sits in the middle.
  auto r = ledger_->append("p", batch).get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EXPECT_EQ(ledger_->head("p")->seq, 1U);
  // None of the batch's other events went in either: re-sending them appends them fresh.
  batch.erase(batch.begin() + 2);
  auto ok = append_ok("p", batch);
  for (const auto& receipt : ok) EXPECT_FALSE(receipt.duplicate);
  EXPECT_EQ(ok.front().seq, 2U);
}

TEST_F(Chain, InBatchConflictRejectsTheBatch) {
  EventDraft d = make_draft();
  EventDraft twin = d;
  twin.payload = "different";
  auto r = ledger_->append("p", {make_draft(), d, twin}).get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kConflict);
  EXPECT_EQ(ledger_->head("p")->seq, 0U);
}

TEST_F(Chain, RejectedBatchDoesNotDisturbConcurrentBatches) {
  EventDraft d = make_draft();
  append_ok("p", {d});
  EventDraft changed = d;
  changed.payload = "other";
  // Queue several at once so they share a commit.
  auto good1 = ledger_->append("p", make_drafts(3));
  auto bad = ledger_->append("p", {make_draft(), changed});
  auto good2 = ledger_->append("p", make_drafts(2));
  auto r1 = good1.get();
  auto rb = bad.get();
  auto r2 = good2.get();
  ASSERT_TRUE(r1.is_ok());
  ASSERT_FALSE(rb.is_ok());
  ASSERT_TRUE(r2.is_ok());
  EXPECT_EQ(ledger_->head("p")->seq, 6U);
  auto report = ledger::verify(*ledger_, {});
  ASSERT_TRUE(report.is_ok());
  EXPECT_FALSE(report->problem.has_value());
}

TEST_F(Chain, RejectsInvalidInputWithoutAppending) {
  auto expect_invalid = [&](const std::string& project, std::vector<EventDraft> drafts,
                            const std::string& needle) {
    auto r = ledger_->append(project, std::move(drafts)).get();
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Code::kInvalid);
    EXPECT_NE(r.status().detail().find(needle), std::string::npos) << r.status().detail();
  };
  expect_invalid("Bad_Project", make_drafts(1), "project id");
  expect_invalid("", make_drafts(1), "project id");
  expect_invalid(std::string(65, 'a'), make_drafts(1), "project id");
  expect_invalid("p", {}, "empty");
  expect_invalid("p", make_drafts(ledger::kBatchEventsMax + 1, 1), "kBatchEventsMax");
  auto no_actor = make_drafts(2);
  no_actor[1].actor.clear();
  expect_invalid("p", no_actor, "event 1: actor");
  auto long_device = make_drafts(1);
  long_device[0].device_id.assign(ledger::kDeviceIdBytesMax + 1, 'd');
  expect_invalid("p", long_device, "device_id");
  auto big = make_drafts(1);
  big[0].payload.assign(ledger::kPayloadBytesMax + 1, 'x');
  expect_invalid("p", big, "kPayloadBytesMax");
  auto nil = make_drafts(1);
  nil[0].event_id = EventId{};
  expect_invalid("p", nil, "nil");
  EXPECT_EQ(ledger_->head("p")->seq, 0U);
}

TEST_F(Chain, ReadOnlyLedgerRefusesAppends) {
  append_ok("p", make_drafts(1));
  reopen(/*with_keys=*/false);
  auto r = ledger_->append("p", make_drafts(1)).get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kBusy);
  EXPECT_TRUE(ledger_->read("p", 1).is_ok());
  auto opened = ledger_->open_event(*ledger_->read("p", 1));
  ASSERT_FALSE(opened.is_ok());
  EXPECT_EQ(opened.status().code(), Code::kInvalid);
}

TEST_F(Chain, ScanHonoursFromAndLimit) {
  append_ok("p", make_drafts(10));
  append_ok("q", make_drafts(3));
  std::vector<std::uint64_t> seen;
  ASSERT_TRUE(ledger_->scan("p", 4, 3, [&](const ledger::StoredEvent& s) {
    seen.push_back(s.seq);
    return true;
  }).is_ok());
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{4, 5, 6}));
  seen.clear();
  ASSERT_TRUE(ledger_->scan("p", 9, 0, [&](const ledger::StoredEvent& s) {
    seen.push_back(s.seq);
    return true;
  }).is_ok());
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{9, 10}));  // Stops at the project's end.
  EXPECT_EQ(ledger_->read("p", 11).status().code(), Code::kNotFound);
}

TEST_F(Chain, ConcurrentAppendersShareCommitsWithoutGapsOrDuplicates) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 40;
  std::vector<std::vector<Receipt>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = ledger_->append("p", make_drafts(1)).get();
        ASSERT_TRUE(r.is_ok());
        got[static_cast<std::size_t>(t)].push_back(r->front());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> seqs;
  for (const auto& per : got) {
    for (const auto& r : per) {
      EXPECT_TRUE(seqs.insert(r.seq).second);
      EXPECT_EQ(ledger_->read("p", r.seq)->hash, r.hash);
    }
  }
  EXPECT_EQ(seqs.size(), std::size_t{kThreads * kPerThread});
  EXPECT_EQ(*seqs.rbegin(), std::uint64_t{kThreads * kPerThread});
}

class SmallMap : public LedgerTest {
 protected:
  std::size_t initial_map_bytes() const override { return 256U << 10U; }
};

TEST_F(SmallMap, MapGrowsInsteadOfFailingWhenFull) {
  const std::size_t before = ledger_->map_bytes();
  // ~6 MiB of payload into a 256 KiB map: needs several doublings mid-commit.
  for (int i = 0; i < 20; ++i) append_ok("p", make_drafts(100, 3000));
  EXPECT_GT(ledger_->map_bytes(), before);
  EXPECT_EQ(ledger_->head("p")->seq, 2000U);
  auto report = ledger::verify(*ledger_, {});
  ASSERT_TRUE(report.is_ok());
  EXPECT_FALSE(report->problem.has_value());
  EXPECT_EQ(report->events, 2000U);
  // A reader holding a snapshot does not block growth forever: it finishes, growth proceeds.
  reopen();
  append_ok("p", make_drafts(200, 3000));
  EXPECT_EQ(ledger_->head("p")->seq, 2200U);
}

TEST_F(SmallMap, OneHugeEventGrowsTheMap) {
  auto drafts = make_drafts(1, 4U << 20U);  // 4 MiB payload into a 256 KiB map.
  auto r = append_ok("p", drafts);
  ASSERT_EQ(r.size(), 1U);
  auto opened = ledger_->open_event(*ledger_->read("p", 1));
  ASSERT_TRUE(opened.is_ok());
  EXPECT_EQ(opened->payload.size(), 4U << 20U);
}

TEST_F(Chain, FailedCommitPoisonsTheLedger) {
  append_ok("p", make_drafts(2));
  ledger_->inject_commit_failures(1);
  auto failed = ledger_->append("p", make_drafts(1)).get();
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), Code::kFatal);
  auto later = ledger_->append("p", make_drafts(1)).get();
  ASSERT_FALSE(later.is_ok());
  EXPECT_EQ(later.status().code(), Code::kFatal);
  reopen();
  auto after_restart = append_ok("p", make_drafts(1));
  EXPECT_EQ(after_restart[0].seq, 3U);
}

}  // namespace
}  // namespace trail::testing

namespace trail::testing {
namespace {

class AsyncAppend : public LedgerTest {};

TEST_F(AsyncAppend, CallbackGetsReceiptsOnceTheCommitIsDurable) {
  std::promise<Result<std::vector<ledger::Receipt>>> got;
  std::atomic<int> calls{0};
  ledger_->append_async("clinic-a", make_drafts(3), [&](Result<std::vector<ledger::Receipt>> r) {
    ++calls;
    got.set_value(std::move(r));
  });
  auto result = got.get_future().get();
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  ASSERT_EQ(result->size(), 3U);
  EXPECT_EQ((*result)[2].seq, 3U);
  EXPECT_EQ(calls.load(), 1);
  // Durable: a reopened ledger (a new process would see the same) holds all three.
  reopen();
  EXPECT_EQ(ledger_->head("clinic-a")->seq, 3U);
}

TEST_F(AsyncAppend, RefusedBatchIsAnsweredOnTheCallersThreadWithTheReason) {
  const auto caller = std::this_thread::get_id();
  std::thread::id answered_on;
  Status status = Status::ok();
  ledger_->append_async("Bad Project", make_drafts(1), [&](Result<std::vector<ledger::Receipt>> r) {
    answered_on = std::this_thread::get_id();
    status = r.status();
  });
  EXPECT_EQ(answered_on, caller);
  EXPECT_EQ(status.code(), Code::kInvalid);
  ledger_->append_async("clinic-a", {}, [&](Result<std::vector<ledger::Receipt>> r) { status = r.status(); });
  EXPECT_EQ(status.code(), Code::kInvalid);
  EXPECT_EQ(ledger_->head("clinic-a")->seq, 0U);
}

TEST_F(AsyncAppend, ManyInFlightFromOneThreadAllCommitInOrderOfTheirSeqs) {
  constexpr int kRequests = 200;
  std::atomic<int> done{0};
  std::atomic<int> failed{0};
  std::promise<void> all;
  for (int i = 0; i < kRequests; ++i) {
    ledger_->append_async("clinic-a", make_drafts(2), [&](Result<std::vector<ledger::Receipt>> r) {
      if (!r.is_ok()) ++failed;
      if (++done == kRequests) all.set_value();
    });
  }
  all.get_future().wait();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(ledger_->head("clinic-a")->seq, 2U * kRequests);
}

}  // namespace
}  // namespace trail::testing
