// Encodes one text and one composed query with the bundled tiny model through bgevl::load, and
// checks the results are unit vectors of the model's dimension.
#include <bgevl/bgevl.h>

#include <cmath>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: consumer MODEL_DIR IMAGE\n";
    return 2;
  }
  auto model = bgevl::load(argv[1]);
  auto e = model->encode(
      {bgevl::EmbedItem("a photo of a cat"), {bgevl::ImageInput::path(argv[2]), "make it night"}});
  const auto norms = e.norm(2, 1);
  std::cout << "bgevl " << bgevl::version() << " " << bgevl::family_name(model->family())
            << " embeddings " << e.sizes() << " norms " << norms << "\n";
  return (e.size(0) == 2 && e.size(1) == model->embedding_dim() &&
          (norms - 1).abs().max().item<double>() < 1e-5)
             ? 0
             : 1;
}
