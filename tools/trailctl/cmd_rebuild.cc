// trailctl rebuild: empty every view and replay every chain into it.
#include <cstdio>

#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"
#include "tools/trailctl/progress.h"

namespace trail::tools {

int run_rebuild(const CommonOptions& common) {
  auto opened = open_ledger(common, /*read_only=*/false);
  if (!opened.is_ok()) return fail(opened.status().detail());
  auto& ledger = *opened->ledger;
  std::uint64_t events = 0;
  {
    Progress progress{"rebuilding"};
    const Status rebuilt = ledger.rebuild_projections([&](std::uint64_t done, std::uint64_t total) {
      events = done;
      progress.update(done, total);
    });
    if (!rebuilt.is_ok()) return fail(rebuilt.to_string());
  }
  auto digest = ledger.projection_digest();
  if (!digest.is_ok()) return fail(digest.status().detail());
  std::printf("rebuilt views from %llu events; digest %s\n",
              static_cast<unsigned long long>(events), to_hex(*digest).c_str());
  return kExitOk;
}

}  // namespace trail::tools
