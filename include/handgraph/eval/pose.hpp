// handgraph/eval/pose.hpp: the 21-joint hand pose as the evaluation code passes it around,
// and the joint order of spec section 4 (wrist, thumb 1-4, index 1-4, middle 1-4,
// ring 1-4, little 1-4; 1 = nearest the palm). Depends on nothing.
#pragma once
#include <array>
#include <cstddef>

namespace handgraph {

constexpr std::size_t pose_joint_count = 21;

// Joint j's x, y, z in camera space (cm unless a name says otherwise).
using pose21 = std::array<std::array<double, 3>, pose_joint_count>;

// Names of the joints in the network's order.
inline const std::array<const char*, pose_joint_count>& joint_names() {
    static const std::array<const char*, pose_joint_count> names = {
        "wrist",
        "thumb_1", "thumb_2", "thumb_3", "thumb_4",
        "index_1", "index_2", "index_3", "index_4",
        "middle_1", "middle_2", "middle_3", "middle_4",
        "ring_1", "ring_2", "ring_3", "ring_4",
        "little_1", "little_2", "little_3", "little_4"};
    return names;
}

// Position of a joint name in joint_names(), or pose_joint_count when unknown.
inline std::size_t joint_index(const char* name) {
    const auto& n = joint_names();
    for (std::size_t j = 0; j < n.size(); ++j) {
        const char* a = n[j];
        const char* b = name;
        while (*a && *a == *b) ++a, ++b;
        if (*a == *b) return j;
    }
    return pose_joint_count;
}

}  // namespace handgraph
