#include "mm/types.h"

#include <ios>

namespace hvmm {

const char* PageTypeName(PageType t) {
  switch (t) {
    case PageType::kNone:
      return "none";
    case PageType::kL1:
      return "l1";
    case PageType::kL2:
      return "l2";
    case PageType::kL3:
      return "l3";
    case PageType::kL4:
      return "l4";
    case PageType::kWritable:
      return "writable";
  }
  return "invalid";
}

std::ostream& operator<<(std::ostream& os, PageType t) {
  return os << PageTypeName(t);
}

std::ostream& operator<<(std::ostream& os, Mfn mfn) {
  return os << "mfn " << std::hex << "0x" << mfn.value() << std::dec;
}

std::ostream& operator<<(std::ostream& os, DomainId d) {
  return os << "d" << d.value();
}

std::ostream& operator<<(std::ostream& os, Vaddr va) {
  return os << std::hex << "0x" << va.value() << std::dec;
}

}  // namespace hvmm
