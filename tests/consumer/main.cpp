// A complete application on an installed bgevl (or its build tree): loads a model, indexes a
// folder of images, and runs a composed query (an image plus a modification text) against it.
//   consumer MODEL_DIR GALLERY_DIR INDEX_DIR QUERY_IMAGE "modification text" EXPECTED_TOP_ID
#include <bgevl/bgevl.h>

#include <cmath>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr
        << "usage: consumer MODEL_DIR GALLERY_DIR INDEX_DIR QUERY_IMAGE TEXT EXPECTED_TOP_ID\n";
    return 2;
  }
  try {
    auto model = bgevl::load(argv[1]);  // a folder, or a hub id in the Hugging Face cache
    const auto progress =
        bgevl::Index::build(*model, bgevl::list_gallery(argv[2]), argv[3]);  // resumable
    std::cout << "indexed " << progress.embedded << " images\n";

    const auto index = bgevl::Index::open(argv[3]);
    bgevl::Query query;
    query.image = bgevl::ImageInput::path(argv[4]);
    query.text = argv[5];
    const auto hits = index.search(*model, {query}, 5)[0];
    for (const auto& h : hits) std::cout << h.rank << "  " << h.score << "  " << h.id << "\n";

    // The scores are encode(query) . encode(gallery image).
    const auto q = model->encode({bgevl::EmbedItem(bgevl::ImageInput::path(argv[4]), argv[5])});
    const auto top = model->encode({bgevl::EmbedItem(bgevl::ImageInput::path(hits[0].path))});
    const double direct = q.matmul(top.t()).item<double>();
    const bool ok =
        hits.size() == 5 && hits[0].id == argv[6] && std::abs(direct - hits[0].score) < 1e-5;
    std::cout << "bgevl " << bgevl::version() << ": top hit " << hits[0].id
              << (ok ? " as expected" : " NOT as expected") << "\n";
    return ok ? 0 : 1;
  } catch (const bgevl::Error& e) {  // FileNotFoundError, InvalidArgumentError, ...
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
