// Receipts as JSON: written in place (no JSON library), so held here to what a JSON library
// reads back, field for field, with format_uuid's and to_hex's spellings.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "ledger/bytes.h"
#include "projections/event_json.h"

namespace trail::proj {
namespace {

namespace json = boost::json;

ledger::Receipt receipt(std::uint64_t seq, std::uint8_t fill, bool duplicate) {
  ledger::Receipt r;
  r.seq = seq;
  for (std::size_t i = 0; i < r.hash.size(); ++i) r.hash[i] = static_cast<std::uint8_t>(fill + 17 * i);
  r.duplicate = duplicate;
  return r;
}

TEST(ReceiptJson, ReadsBackAsTheReceiptInItsFieldOrder) {
  EventId id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(0xf0 - 13 * i);
  for (const auto& r : {receipt(1, 0, false), receipt(18446744073709551615ULL, 0xab, true)}) {
    const std::string text = receipt_to_json(id, r);
    const json::value read = json::parse(text);
    const json::object& o = read.as_object();
    ASSERT_EQ(o.size(), 4U) << text;
    const char* order[] = {"event_id", "seq", "hash", "duplicate"};
    std::size_t at = 0;
    for (const auto& entry : o) EXPECT_EQ(entry.key(), order[at++]) << text;
    EXPECT_EQ(o.at("event_id").as_string(), format_uuid(id));
    EXPECT_EQ(o.at("seq").to_number<std::uint64_t>(), r.seq);
    EXPECT_EQ(o.at("hash").as_string(), to_hex(r.hash));
    EXPECT_EQ(o.at("duplicate").as_bool(), r.duplicate);
    // A batch's answer is receipts appended one after another.
    std::string two = "[";
    append_receipt_json(two, id, r);
    two += ",";
    append_receipt_json(two, id, r);
    two += "]";
    EXPECT_EQ(json::parse(two).as_array().size(), 2U);
  }
}

}  // namespace
}  // namespace trail::proj
