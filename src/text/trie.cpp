// transformers' tokenization_utils.Trie; see text/trie.h.
#include "text/trie.h"

#include <algorithm>

namespace bgevl::text {

void Trie::add(const std::string& word) {
  if (word.empty()) return;
  int node = 0;
  for (unsigned char c : word) {
    auto it = nodes_[node].next.find(c);
    if (it == nodes_[node].next.end()) {
      nodes_.push_back(Node{});
      const int child = static_cast<int>(nodes_.size()) - 1;
      nodes_[node].next.emplace(c, child);
      node = child;
    } else {
      node = it->second;
    }
  }
  nodes_[node].terminal = true;
}

std::vector<std::string> Trie::split(const std::string& text) const {
  // states: (start, node) in insertion order (Python's OrderedDict).
  std::vector<std::pair<std::size_t, int>> states;
  std::vector<std::size_t> offsets{0};
  std::size_t skip = 0;
  const std::size_t n = text.size();
  for (std::size_t current = 0; current < n; ++current) {
    const unsigned char current_char = static_cast<unsigned char>(text[current]);
    if (skip && current < skip) continue;
    std::vector<std::size_t> to_remove;
    bool reset = false;
    for (std::size_t si = 0; si < states.size(); ++si) {
      std::size_t start = states[si].first;
      const int trie_pointer = states[si].second;
      if (nodes_[trie_pointer].terminal) {
        std::size_t end = 0;
        for (const auto& [lookstart, lookptr0] : states) {
          int looktrie_pointer = lookptr0;
          std::size_t lookahead_index;
          if (lookstart > start) {
            break;
          } else if (lookstart < start) {
            lookahead_index = current + 1;
            end = current + 1;
          } else {
            lookahead_index = current;
            end = current;
          }
          int next_char =
              lookahead_index < n ? static_cast<unsigned char>(text[lookahead_index]) : -1;
          if (nodes_[looktrie_pointer].terminal) {
            start = lookstart;
            end = lookahead_index;
            skip = lookahead_index;
          }
          while (next_char >= 0) {
            const int child = child_of(looktrie_pointer, static_cast<unsigned char>(next_char));
            if (child < 0) break;
            looktrie_pointer = child;
            lookahead_index += 1;
            if (nodes_[looktrie_pointer].terminal) {
              start = lookstart;
              end = lookahead_index;
              skip = lookahead_index;
            }
            if (lookahead_index == n) break;
            next_char = static_cast<unsigned char>(text[lookahead_index]);
          }
        }
        offsets.push_back(start);
        offsets.push_back(end);
        reset = true;
        break;
      }
      const int child = child_of(trie_pointer, current_char);
      if (child >= 0) {
        states[si].second = child;
      } else {
        to_remove.push_back(start);
      }
    }
    if (reset) {
      states.clear();
    } else if (!to_remove.empty()) {
      states.erase(std::remove_if(states.begin(), states.end(),
                                  [&](const std::pair<std::size_t, int>& s) {
                                    return std::find(to_remove.begin(), to_remove.end(), s.first) !=
                                           to_remove.end();
                                  }),
                   states.end());
    }
    if (current >= skip) {
      const int child = child_of(0, current_char);
      if (child >= 0) set_state(states, current, child);
    }
  }
  for (const auto& [start, ptr] : states) {
    if (nodes_[ptr].terminal) {
      offsets.push_back(start);
      offsets.push_back(n);
      break;
    }
  }
  // cut_text
  offsets.push_back(n);
  std::vector<std::string> tokens;
  std::size_t start = 0;
  for (std::size_t end : offsets) {
    if (start > end) continue;  // "a bug in Trie algorithm": Python logs and skips
    if (start == end) continue;
    tokens.push_back(text.substr(start, end - start));
    start = end;
  }
  return tokens;
}

int Trie::child_of(int node, unsigned char c) const {
  auto it = nodes_[node].next.find(c);
  return it == nodes_[node].next.end() ? -1 : it->second;
}

void Trie::set_state(std::vector<std::pair<std::size_t, int>>& states, std::size_t key, int v) {
  for (auto& s : states) {
    if (s.first == key) {
      s.second = v;
      return;
    }
  }
  states.emplace_back(key, v);
}

}  // namespace bgevl::text
