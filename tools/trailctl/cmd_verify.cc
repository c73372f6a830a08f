// trailctl verify: walk every chain (or one) and report the first event found bad.
#include <cstdio>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "ledger/verify.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/progress.h"

namespace trail::tools {

int run_verify(const CommonOptions& common, bool use_keys,
               const std::optional<std::string>& project) {
  ledger::LedgerOptions options;
  options.data_dir = common.data_dir;
  options.read_only = true;
  if (use_keys) {
    auto keys = ledger::KeyRing::load(common.keys_dir);
    if (!keys.is_ok()) return fail(keys.status().detail());
    options.keys = *keys;
  }
  auto opened = ledger::Ledger::open(options);
  if (!opened.is_ok()) return fail(opened.status().detail());

  Progress progress{"verifying"};
  ledger::VerifyOptions verify_options;
  verify_options.project = project;
  verify_options.progress = [&](std::uint64_t done, std::uint64_t total) {
    progress.update(done, total);
  };
  auto report = ledger::verify(**opened, verify_options);
  if (!report.is_ok()) return fail(report.status().detail());
  if (report->problem) {
    const auto& p = *report->problem;
    std::printf("TAMPERED project=%s seq=%llu: %s\n", p.project.c_str(),
                static_cast<unsigned long long>(p.seq), p.reason.c_str());
    return kExitRejected;
  }
  std::printf("intact: %llu event%s in %llu project%s (%s)\n",
              static_cast<unsigned long long>(report->events), report->events == 1 ? "" : "s",
              static_cast<unsigned long long>(report->projects), report->projects == 1 ? "" : "s",
              report->payloads_opened ? "chains and payload tags checked"
                                      : "chains checked; no keys, payload tags not checked");
  if (report->payloads_unchecked > 0) {
    std::printf("note: %llu payload tags not checked: their cipher needs AES-NI, which this CPU "
                "lacks\n", static_cast<unsigned long long>(report->payloads_unchecked));
  }
  return kExitOk;
}

}  // namespace trail::tools
