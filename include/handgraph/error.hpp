// handgraph/error.hpp: the one exception type of the library.
// Every failure (bad file, wrong shape, missing data) throws handgraph::error with a
// message that names the file, tensor, key or frame at fault. Depends on nothing.
#pragma once
#include <stdexcept>
#include <string>

namespace handgraph {

class error : public std::runtime_error {
public:
    explicit error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace handgraph
