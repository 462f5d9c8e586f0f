// The family-agnostic API: bgevl::load through the registry, set_processor, process settings.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "bgevl/bgevl.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace bgevl;
using namespace bgevl::test;

namespace {
const std::string kClip = "clip/tiny-fp16-quickgelu";
const std::string kMllm = "llava/tiny-llava-next-legacy";
}  // namespace

TEST(Load, PicksTheFamilyFromConfig) {
  const auto clip = load(fixtures(kClip));
  EXPECT_EQ(clip->family(), Family::Clip);
  ASSERT_NE(dynamic_cast<ClipEmbedder*>(clip.get()), nullptr);
  EXPECT_EQ(clip->embedding_dim(), 16);
  EXPECT_EQ(clip->default_batch_size(), 32);
  const auto direct = ClipEmbedder(fixtures(kClip)).encode({}, {"a cat"});
  EXPECT_TRUE(torch::equal(clip->encode({EmbedItem("a cat")}), direct));

  const auto mllm = load(fixtures(kMllm));
  EXPECT_EQ(mllm->family(), Family::LlavaNext);
  ASSERT_NE(dynamic_cast<MllmEmbedder*>(mllm.get()), nullptr);
  EXPECT_EQ(mllm->embedding_dim(), 32);
  EXPECT_EQ(mllm->default_batch_size(), 8);
  EXPECT_EQ(model_family(fixtures(kMllm)), Family::LlavaNext);

  EXPECT_THROW(load("/no/such/model"), FileNotFoundError);
  EXPECT_THROW(load(fixtures("images")), FileNotFoundError);  // a folder without config.json
}

TEST(Load, LeavesProcessSettingsAlone) {
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const auto m = load(fixtures(kClip));
  m->encode({EmbedItem("a cat"), EmbedItem(ImageInput::path(fixtures("images/chelsea.jpg")))});
  EXPECT_EQ(at::get_num_threads(), 1);
  // the allocator: a 64 MiB block is still its own mapping (tune_cpu_allocator was not called)
  const auto mapped = mallinfo2().hblks;
  auto* p = static_cast<volatile char*>(std::malloc(64 << 20));
  p[0] = 1;
  EXPECT_EQ(mallinfo2().hblks, mapped + 1);
  std::free(const_cast<char*>(p));
  at::set_num_threads(before);
}

TEST(SetProcessor, KeepsTheRevisionGivenAtLoad) {
  auto cache = scratch_dir("hf_rev");
  const auto repo = cache / "hub" / "models--org--tiny";
  fs::create_directories(repo / "snapshots" / "c0ffee");
  fs::create_directories(repo / "refs");
  for (const auto& e : fs::directory_iterator(fixtures(kClip)))
    fs::copy(e.path(), repo / "snapshots" / "c0ffee" / e.path().filename());
  write_bytes(repo / "refs" / "v1", "c0ffee\n");  // no refs/main
  ::unsetenv("HF_HUB_CACHE");
  ::setenv("HF_HOME", cache.c_str(), 1);
  ::setenv("HF_HUB_OFFLINE", "1", 1);  // the cache only: never the real hub from a test
  LoadOptions o;
  o.revision = "v1";
  auto m = load("org/tiny", o);
  EXPECT_EQ(m->revision(), "v1");
  EXPECT_NO_THROW(m->set_processor("org/tiny"));
  EXPECT_THROW(m->set_processor("org/tiny", "main"), FileNotFoundError);
  ::unsetenv("HF_HOME");
  ::unsetenv("HF_HUB_OFFLINE");
}

TEST(SetProcessor, RefusesAnotherFamilysFolder) {
  auto clip = load(fixtures(kClip));
  try {
    clip->set_processor(fixtures(kMllm));
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("BGE-VL-MLLM"), std::string::npos) << msg;
    EXPECT_NE(msg.find("BGE-VL-CLIP"), std::string::npos) << msg;
  }
  auto mllm = load(fixtures(kMllm));
  EXPECT_THROW(mllm->set_processor(fixtures(kClip)), InvalidArgumentError);
  // a folder with a processor of no family at all
  const auto empty = scratch_dir("no_processor");
  EXPECT_THROW(clip->set_processor(empty.string()), InvalidArgumentError);
  // a processor-only folder of the right family (no config.json) is fine
  const auto only = scratch_dir("processor_only");
  for (const char* f : {"vocab.json", "merges.txt", "preprocessor_config.json"})
    fs::copy(fs::path(fixtures(kClip)) / f, only / f);
  EXPECT_NO_THROW(clip->set_processor(only.string()));
  EXPECT_EQ(clip->encode({EmbedItem("a cat")}).size(0), 1);
  // a tokenizer whose ids go past the model's vocabulary is another model's: refused at once
  auto vocab = read_json((only / "vocab.json").string());
  vocab["zzzz</w>"] = 99999;
  write_bytes(only / "vocab.json", vocab.dump());
  try {
    clip->set_processor(only.string());
    ADD_FAILURE() << "no exception";
  } catch (const InvalidArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("99999"), std::string::npos) << e.what();
  }
  EXPECT_EQ(clip->encode({EmbedItem("a cat")}).size(0), 1);  // the previous processor stays
}

// A process that forks after encoding (multiprocessing's fork, gunicorn --preload) works in the
// child too, whichever entry point the child uses first: bgevl's pool is made anew there and
// libtorch runs single-threaded (OpenMP's threads do not survive a fork, and a parallel region
// would wait for them forever).
template <typename Child>
void expect_child_works(Child&& child) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::alarm(60);  // a hang ends as SIGALRM, not as a stuck test run
    bool ok = false;
    try {
      ok = child();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    }
    ::_exit(ok ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Fork, ChildProcessEncodes) {
  const int before = at::get_num_threads();
  set_num_threads(2);
  const auto m = load(fixtures(kClip));
  const std::vector<EmbedItem> items = {EmbedItem(ImageInput::path(fixtures("images/chelsea.jpg"))),
                                        EmbedItem("a cat")};
  const auto parent = m->encode(items);
  expect_child_works([&] { return max_abs_diff(m->encode(items), parent) <= kFloat32Tol; });
  // a model built by its class, used through the model card's calls first
  ClipEmbedder clip(fixtures(kClip));
  const auto features = clip.get_text_features(clip.tokenize({"a cat"}));
  expect_child_works([&] {
    return max_abs_diff(clip.get_text_features(clip.tokenize({"a cat"})), features) <= kFloat32Tol;
  });
  MllmEmbedder mllm(fixtures(kMllm));
  const auto inputs = mllm.data_process({ImageInput::path(fixtures("images/chelsea.jpg"))},
                                        {"a cat"}, Prompt::candidate());
  const auto hidden = mllm.forward(inputs);
  expect_child_works(  // unnormalised hidden states: the relative float32 budget
      [&] { return max_abs_diff(mllm.forward(inputs), hidden) <= scaled_tol(hidden); });
  EXPECT_EQ(at::get_num_threads(), 2);  // the parent keeps its threads
  at::set_num_threads(before);
}
