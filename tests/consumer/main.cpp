// Encodes one text with the bundled tiny model and checks the result is a unit vector.
#include <bgevl/bgevl.h>

#include <cmath>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer MODEL_DIR\n";
    return 2;
  }
  bgevl::ClipEmbedder model(argv[1]);
  auto e = model.encode({}, {"a photo of a cat"});
  const double norm = e.norm().item<double>();
  std::cout << "bgevl " << bgevl::version() << " embedding " << e.sizes() << " norm " << norm << "\n";
  return (e.size(0) == 1 && e.size(1) == model.embedding_dim() && std::abs(norm - 1.0) < 1e-5) ? 0 : 1;
}
