#include "mm/testing/mm_test_util.h"

#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/check.h"

namespace hvmm {
namespace testing {

std::unique_ptr<MemoryManager> MakeMemoryManager(uint64_t frames, int shards) {
  MemoryManagerOptions options;
  options.frame_count = frames;
  options.allocator_shards = shards;
  absl::StatusOr<std::unique_ptr<MemoryManager>> mm =
      MemoryManager::Create(options);
  HVMM_CHECK(mm.ok()) << mm.status();
  return *std::move(mm);
}

std::string StateDigest(const MemoryManager& mm) {
  const FrameTable& table = mm.frame_table();
  std::string out;
  for (uint64_t m = 0; m < table.frame_count(); ++m) {
    const PageInfo& info = table.info(Mfn(m));
    uint64_t content_hash = 1469598103934665603ull;  // FNV-1a over entries.
    const std::atomic<uint64_t>* e = table.entries(Mfn(m));
    for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
      content_hash = (content_hash ^ e[i].load()) * 1099511628211ull;
    }
    absl::StrAppendFormat(&out, "%u:o%u c%u t%u %s f%x g%u s%u h%x\n", m,
                          info.owner.load(), info.count, info.type_count,
                          PageTypeName(info.type), info.flags,
                          info.generation.load(),
                          info.tlbflush_timestamp.load().value(), content_hash);
  }
  absl::StrAppendFormat(&out, "free %u\n", mm.allocator().free_frames());
  for (const DomainInfo& d : mm.ListDomains()) {
    absl::StrAppendFormat(&out, "d%u tot %u\n", d.id.value(), d.tot_pages);
  }
  return out;
}

std::string DigestDiff(const std::string& before, const std::string& after,
                       int max_lines) {
  const std::vector<absl::string_view> a = absl::StrSplit(before, '\n');
  const std::vector<absl::string_view> b = absl::StrSplit(after, '\n');
  std::string out;
  int shown = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) && shown < max_lines;
       ++i) {
    const absl::string_view x = i < a.size() ? a[i] : "";
    const absl::string_view y = i < b.size() ? b[i] : "";
    if (x == y) continue;
    absl::StrAppend(&out, "- ", x, "\n+ ", y, "\n");
    ++shown;
  }
  return out;
}

uint64_t EntryAt(const MemoryManager& mm, Mfn table, uint32_t index) {
  return mm.frame_table().entries(table)[index].load();
}

}  // namespace testing
}  // namespace hvmm
