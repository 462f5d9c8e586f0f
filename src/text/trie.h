// Splitting a text around the added tokens, for the Mistral tokenizer (text/mistral_tokenizer.cpp).
// No libtorch here.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bgevl::text {

// transformers' tokenization_utils.Trie, on UTF-8 bytes. Every token is well-formed UTF-8, so a
// match always starts and ends on character boundaries and the byte-wise walk cuts exactly where
// the character-wise one does.
class Trie {
 public:
  void add(const std::string& word);

  std::vector<std::string> split(const std::string& text) const;

 private:
  struct Node {
    std::map<unsigned char, int> next;
    bool terminal = false;
  };

  int child_of(int node, unsigned char c) const;

  static void set_state(std::vector<std::pair<std::size_t, int>>& states, std::size_t key, int v);

  std::vector<Node> nodes_{Node{}};
};

}  // namespace bgevl::text
