// handgraph/error.hpp: the one exception type of the library.
// Every failure (bad file, wrong shape, missing data) throws handgraph::error with a
// message that names the file, tensor, key or frame at fault. Messages are one printable
// line: control characters that a file put into a name (a newline, a terminal escape
// sequence) are shown as \xNN. Depends on nothing.
#pragma once
#include <stdexcept>
#include <string>

namespace handgraph {

namespace detail {

inline std::string printable_line(const std::string& s) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

}  // namespace detail

class error : public std::runtime_error {
public:
    explicit error(const std::string& what) : std::runtime_error(detail::printable_line(what)) {}
};

}  // namespace handgraph
