// Per-record states a projector wrote, kept in memory for the records' next events, so the
// writer need not read and open them again. A view's tables stay the truth: the kept states
// hold only while this projector has folded every event of each project in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace trail::proj {

template <typename State>
class KeptStates {
 public:
  explicit KeptStates(std::size_t max_states) : max_states_{max_states} {}

  // Every event the projector is given, in order, before anything is taken: a gap in the
  // project's seqs means another process folded events in between (trailctl beside traild),
  // so every kept state is forgotten.
  void saw(std::string_view project, std::uint64_t seq) {
    auto [it, inserted] = last_seq_.try_emplace(std::string(project), 0);
    if (seq != it->second + 1) states_.clear();
    it->second = seq;
  }
  // The state kept under `key`, moved out (keep() puts it back once written), or nullopt.
  std::optional<State> take(const std::string& key) {
    auto it = states_.find(key);
    if (it == states_.end()) return std::nullopt;
    std::optional<State> out{std::move(it->second)};
    states_.erase(it);
    return out;
  }
  // Whether a state is kept under `key` (it stays kept).
  bool contains(const std::string& key) const { return states_.count(key) != 0; }
  // `state` as just written under `key` (committed next, or forget() is called). Any other
  // kept state may go to stay within the bound.
  void keep(const std::string& key, State state) {
    states_.insert_or_assign(key, std::move(state));
    while (states_.size() > max_states_) states_.erase(states_.begin());
  }
  // The transaction that wrote them was abandoned: nothing kept is known to be stored.
  void forget() {
    states_.clear();
    last_seq_.clear();
  }

 private:
  std::size_t max_states_;
  std::unordered_map<std::string, State> states_;
  std::unordered_map<std::string, std::uint64_t> last_seq_;  // Last seq seen, by project.
};

}  // namespace trail::proj
