// Built against the *installed* handgraph package: proves the export works and the
// public header compiles on its own, without handgraph's runtime dispatch library.
#include <handgraph/handgraph.hpp>

#include <iostream>

int main() {
    auto v = handgraph::json::parse(R"({"answer": 42})");
    handgraph::feature_map fm(3, 3, 5, 1);
    std::cout << "handgraph consumer: json " << v.find("answer")->integer << ", feature map channels " << fm.cpad
              << ", kernels " << handgraph::kernels::active_arch_name() << "\n";
    return v.find("answer")->integer == 42 && fm.cpad == 16 ? 0 : 1;
}
