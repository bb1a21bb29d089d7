// HVMM_CHECK: crash on a broken internal invariant.
//
// Errors that a client or guest can cause are returned as absl::Status; a
// failed HVMM_CHECK means hvmm itself is wrong, and continuing would corrupt
// frames, so it prints where and why and aborts. Never use it for input
// validation. Active in every build mode: the cost is one predictable branch.
//
// Example:
//   HVMM_CHECK(info.type_count == 0) << "mfn " << mfn.value();
#ifndef HVMM_BASE_CHECK_H_
#define HVMM_BASE_CHECK_H_

#include <cstdlib>
#include <iostream>
#include <sstream>

namespace hvmm {
namespace check_internal {

// Collects the streamed message, then prints it and aborts in its destructor.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition) {
    stream_ << file << ":" << line << ": HVMM_CHECK failed: " << condition
            << " ";
  }
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  ~CheckFailure() {
    std::cerr << stream_.str() << std::endl;
    std::abort();
  }
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Lets `HVMM_CHECK(c) << x;` type-check as a void expression.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace check_internal
}  // namespace hvmm

#define HVMM_CHECK(condition)                          \
  (__builtin_expect(!!(condition), 1))                 \
      ? (void)0                                        \
      : ::hvmm::check_internal::Voidify() &            \
            ::hvmm::check_internal::CheckFailure(      \
                __FILE__, __LINE__, #condition)        \
                .stream()

#endif  // HVMM_BASE_CHECK_H_
