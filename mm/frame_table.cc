#include "mm/frame_table.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/lazy_zeroed.h"

namespace hvmm {

absl::StatusOr<std::unique_ptr<FrameTable>> FrameTable::Create(
    uint64_t frame_count) {
  if (frame_count == 0 || frame_count > kMaxFrames) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame count must be in [1, ", kMaxFrames, "], got ",
                     frame_count));
  }
  const size_t info_bytes = frame_count * sizeof(PageInfo);
  const size_t content_bytes = frame_count * kPageSize;
  void* infos = MapLazyZeroed(info_bytes);
  if (infos == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot reserve ", info_bytes, " bytes of frame metadata: ",
        std::strerror(errno)));
  }
  void* contents = MapLazyZeroed(content_bytes);
  if (contents == nullptr) {
    const int err = errno;
    munmap(infos, info_bytes);
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot reserve ", content_bytes, " bytes of frame contents: ",
        std::strerror(err)));
  }
  // Zero-filled memory is a valid array of free PageInfo records and of
  // not-present entries (see page_info.h).
  return std::unique_ptr<FrameTable>(
      new FrameTable(frame_count, static_cast<PageInfo*>(infos),
                     static_cast<std::atomic<uint64_t>*>(contents)));
}

FrameTable::FrameTable(uint64_t frame_count, PageInfo* infos,
                       std::atomic<uint64_t>* contents)
    : frame_count_(frame_count), infos_(infos), contents_(contents) {}

FrameTable::~FrameTable() {
  munmap(infos_, frame_count_ * sizeof(PageInfo));
  munmap(contents_, frame_count_ * kPageSize);
}

void FrameTable::Scrub(Mfn mfn) const {
  std::atomic<uint64_t>* e = entries(mfn);
  for (uint32_t i = 0; i < kEntriesPerTable; ++i) {
    e[i].store(0, std::memory_order_relaxed);
  }
}

absl::StatusOr<uint64_t> FrameTable::ResidentContentBytes() const {
  const long page = sysconf(_SC_PAGESIZE);
  const size_t bytes = frame_count_ * kPageSize;
  const size_t pages = (bytes + page - 1) / page;
  // mincore one chunk at a time to bound the vector.
  constexpr size_t kChunkPages = size_t{1} << 20;
  std::vector<unsigned char> vec(std::min(pages, kChunkPages));
  uint64_t resident = 0;
  auto* base = reinterpret_cast<unsigned char*>(contents_);
  for (size_t done = 0; done < pages; done += kChunkPages) {
    const size_t n = std::min(kChunkPages, pages - done);
    if (mincore(base + done * page, n * page, vec.data()) != 0) {
      return absl::InternalError(
          absl::StrCat("mincore: ", std::strerror(errno)));
    }
    for (size_t i = 0; i < n; ++i) resident += (vec[i] & 1) ? page : 0;
  }
  return resident;
}

}  // namespace hvmm
