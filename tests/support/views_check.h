// The check that a ledger's views are exactly what its chains make: their digest, then a
// rebuild from the chains, then the digest again, compared byte for byte.
#pragma once

#include <gtest/gtest.h>

#include "ledger/bytes.h"
#include "ledger/ledger.h"

namespace trail::testing {

inline void expect_views_match_a_rebuild(ledger::Ledger& ledger) {
  auto before = ledger.projection_digest();
  ASSERT_TRUE(before.is_ok());
  ASSERT_TRUE(ledger.rebuild_projections({}).is_ok());
  auto rebuilt = ledger.projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(to_hex(*before), to_hex(*rebuilt));
}

}  // namespace trail::testing
