// trailctl keys show: the checkpoint verifier key of a key directory, for auditors.
#include <cstdio>

#include "ledger/key_ring.h"
#include "tools/trailctl/commands.h"

namespace trail::tools {

int run_keys_show(const CommonOptions& common) {
  auto keys = ledger::KeyRing::load(common.keys_dir);
  if (!keys.is_ok()) return fail(keys.status().detail());
  const std::string vkey = (*keys)->signer().verifier_key();
  std::printf("%s\n", vkey.c_str());
  return kExitOk;
}

}  // namespace trail::tools
