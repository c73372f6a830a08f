// KeptStates: what a projector may take back from memory, and when it must read its tables.
#include <gtest/gtest.h>

#include <string>

#include "projections/kept_states.h"

namespace trail::proj {
namespace {

TEST(KeptStates, AStateIsTakenOnceWhileEveryEventOfItsProjectIsSeenInOrder) {
  KeptStates<std::string> kept{8};
  kept.saw("p", 1);
  kept.keep("a", "a1");
  kept.saw("p", 2);
  kept.saw("q", 1);  // Another project's seqs run on their own.
  ASSERT_EQ(kept.take("a"), "a1");
  EXPECT_EQ(kept.take("a"), std::nullopt);  // Taken: put back only by keep().
  kept.keep("a", "a2");
  kept.saw("p", 3);
  EXPECT_EQ(kept.take("a"), "a2");
}

TEST(KeptStates, AGapInAProjectsSeqsForgetsEverything) {
  KeptStates<std::string> kept{8};
  kept.saw("p", 1);
  kept.keep("a", "a1");
  kept.saw("q", 1);
  kept.keep("b", "b1");
  kept.saw("p", 3);  // Seq 2 was folded elsewhere.
  EXPECT_EQ(kept.take("a"), std::nullopt);
  EXPECT_EQ(kept.take("b"), std::nullopt);
  // A first sight of a project past its seq 1 (events folded before this projector ran) too.
  kept.keep("b", "b2");
  kept.saw("r", 5);
  EXPECT_EQ(kept.take("b"), std::nullopt);
}

TEST(KeptStates, ForgetClearsStatesAndSeqs) {
  KeptStates<std::string> kept{8};
  kept.saw("p", 1);
  kept.keep("a", "a1");
  kept.forget();  // An abandoned transaction.
  EXPECT_EQ(kept.take("a"), std::nullopt);
  kept.saw("p", 2);  // Seq 1's state was never known to be stored: p starts again.
  kept.keep("a", "a2");
  kept.saw("p", 3);
  EXPECT_EQ(kept.take("a"), "a2");
}

TEST(KeptStates, ContainsLeavesTheStateKept) {
  KeptStates<bool> kept{8};
  kept.saw("p", 1);
  EXPECT_FALSE(kept.contains("a"));
  kept.keep("a", true);
  EXPECT_TRUE(kept.contains("a"));
  EXPECT_TRUE(kept.contains("a"));  // Asking takes nothing.
  kept.saw("p", 3);                 // A gap forgets it, as any kept state.
  EXPECT_FALSE(kept.contains("a"));
}

TEST(KeptStates, HoldsAtMostItsBound) {
  KeptStates<int> kept{3};
  kept.saw("p", 1);
  for (int i = 0; i < 10; ++i) kept.keep(std::to_string(i), i);
  int found = 0;
  for (int i = 0; i < 10; ++i) found += kept.take(std::to_string(i)).has_value() ? 1 : 0;
  EXPECT_EQ(found, 3);
}

}  // namespace
}  // namespace trail::proj
