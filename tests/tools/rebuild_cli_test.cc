// Rebuilding the views while another process appends: `trailctl rebuild` beside a running
// traild, or the reverse. Each writer catches the views up to the chain before it appends, so a
// rebuild that resumed from where its own last chunk stopped would fold those events again.
#include <gtest/gtest.h>

#include <memory>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "projections/access_projector.h"
#include "projections/case_projector.h"
#include "projections/identity.h"
#include "projections/report_projector.h"
#include "projections/sync_projector.h"
#include "tests/support/trailctl_fixture.h"
#include "tests/support/views_check.h"

namespace trail::testing {
namespace {

class RebuildBesideAnotherWriter : public TrailctlWithSample {
 protected:
  // The views trailctl and traild register, in a ledger of this process, rebuilt in commits of
  // `chunk` events.
  std::unique_ptr<ledger::Ledger> open(std::uint64_t chunk) {
    auto keys = ledger::KeyRing::load(dir_ / "keys");
    EXPECT_TRUE(keys.is_ok());
    ledger::LedgerOptions options;
    options.data_dir = dir_ / "data";
    options.keys = std::move(*keys);
    options.projectors = {std::make_shared<proj::CaseProjector>(),
                          std::make_shared<proj::ReportProjector>(),
                          std::make_shared<proj::AccessProjector>(),
                          std::make_shared<proj::SyncProjector>(),
                          std::make_shared<proj::IdentityProjector>()};
    options.replay_chunk_events = chunk;
    auto ledger = ledger::Ledger::open(options);
    EXPECT_TRUE(ledger.is_ok()) << ledger.status().to_string();
    return ledger.is_ok() ? std::move(*ledger) : nullptr;
  }
};

TEST_F(RebuildBesideAnotherWriter, FoldsEveryEventOnceWhenTheOtherCaughtTheViewsUpBetweenChunks) {
  // Two more updates of the sample's pregnancy case: the history the views must not double.
  const std::string update =
      R"({"event_id":"5b0e9c1a-3f6d-4c11-9a2e-0000000000c1","kind":"case.updated",)"
      R"("case_id":"9a41f6e2-1c5b-4d37-8e90-3b7d2c6a5f02","actor":"chw-017","device_id":"phone-a3",)"
      R"("channel":"mobile-form","client_time":"2026-03-03T09:00:00+03:00","fields":{"anc_visits":"1"}})"
      "\n";
  ASSERT_EQ(run({"append", "--project", "demo"}, update).exit_code, 0);
  auto ledger = open(2);
  ASSERT_TRUE(ledger);
  int chunks = 0;
  bool appended = false;
  const Status rebuilt = ledger->rebuild_projections([&](std::uint64_t done, std::uint64_t) {
    // After the rebuild's second chunk: another process appends, catching the views up first.
    if (done == 0 || ++chunks != 2) return;
    const std::string more =
        R"({"event_id":"5b0e9c1a-3f6d-4c11-9a2e-0000000000c2","kind":"case.updated",)"
        R"("case_id":"9a41f6e2-1c5b-4d37-8e90-3b7d2c6a5f02","actor":"chw-017","device_id":"phone-a3",)"
        R"("channel":"mobile-form","client_time":"2026-03-04T09:00:00+03:00","fields":{"anc_visits":"2"}})"
        "\n";
    const auto other = run({"append", "--project", "demo"}, more);
    EXPECT_EQ(other.exit_code, 0) << other.err;
    appended = other.exit_code == 0;
  });
  ASSERT_TRUE(rebuilt.is_ok()) << rebuilt.to_string();
  ASSERT_TRUE(appended);
  // Byte for byte what the same chain rebuilt alone gives.
  expect_views_match_a_rebuild(*ledger);
}

}  // namespace
}  // namespace trail::testing
