// hand_track's tracking and smoothing (examples/tracking.hpp) on their own: the One Euro
// filter against its formula on known signals, boxes and their overlap, the box of the next
// frame from 2D joints, and the tracker's schedule of detector runs and its ids. The whole
// binary, on videos, is tests/test_hand_track.py.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "../examples/tracking.hpp"

using namespace tracking;

namespace {

constexpr double pi = 3.14159265358979323846;

handgraph::palm_detection detection(float x, float y, float side, float score = 0.9f) {
    handgraph::palm_detection d;
    d.score = score;
    d.hand_box = {x, y, side, side};
    return d;
}

joints2 joints_in(const box4& b) {  // 21 joints spread over a box (its corners among them)
    joints2 j{};
    for (int k = 0; k < handgraph::num_joints; ++k) {
        const float fu = float(k % 5) / 4, fv = float(k / 5) / 4;
        j[std::size_t(k)] = {b[0] + fu * b[2], b[1] + std::min(1.0f, fv) * b[3]};
    }
    return j;
}

}  // namespace

TEST_CASE("One Euro filter: a step with beta 0 is the first-order low-pass 1 - (1 - alpha)^n") {
    one_euro_params p;
    p.min_cutoff = 1.5;
    p.beta = 0;
    p.d_cutoff = 1;
    one_euro f(p);
    const double te = 1.0 / 30;
    const double tau = 1 / (2 * pi * 1.5), alpha = 1 / (1 + tau / te);
    float x = 0;
    f.filter(&x, 1, 0.0);
    CHECK(x == 0.0f);  // the first sample passes unchanged
    for (int n = 1; n <= 40; ++n) {
        x = 1;
        f.filter(&x, 1, n * te);
        CHECK(double(x) == doctest::Approx(1 - std::pow(1 - alpha, n)).epsilon(1e-6));
    }
}

TEST_CASE("One Euro filter: the paper's steps by hand, with the cut-off rising with speed") {
    one_euro_params p;
    p.min_cutoff = 1;
    p.beta = 0.5;
    p.d_cutoff = 2;
    one_euro f(p);
    float v[2] = {0, 10};  // two values filtered side by side, each on its own
    f.filter(v, 2, 0.0);
    CHECK(v[0] == 0.0f);
    CHECK(v[1] == 10.0f);
    // t = 0.5: x = (2, 10).
    const double te = 0.5;
    auto alpha = [&](double fc) { return 1 / (1 + (1 / (2 * pi * fc)) / te); };
    const double dx1 = (2 - 0) / te;                 // 4
    const double dxh1 = alpha(2) * dx1;              // dxhat_0 = 0
    const double fc1 = 1 + 0.5 * std::abs(dxh1);
    const double x1 = alpha(fc1) * 2 + (1 - alpha(fc1)) * 0;
    v[0] = 2, v[1] = 10;
    f.filter(v, 2, 0.5);
    CHECK(double(v[0]) == doctest::Approx(x1).epsilon(1e-6));
    CHECK(double(v[1]) == doctest::Approx(10).epsilon(1e-7));  // at rest: unchanged
    // t = 1.0: x = 3.
    const double dx2 = (3 - x1) / te;
    const double dxh2 = alpha(2) * dx2 + (1 - alpha(2)) * dxh1;
    const double fc2 = 1 + 0.5 * std::abs(dxh2);
    const double x2 = alpha(fc2) * 3 + (1 - alpha(fc2)) * x1;
    v[0] = 3;
    f.filter(v, 2, 1.0);
    CHECK(double(v[0]) == doctest::Approx(x2).epsilon(1e-6));
    // The same time again gives the last output.
    v[0] = 100;
    f.filter(v, 2, 1.0);
    CHECK(double(v[0]) == doctest::Approx(x2).epsilon(1e-6));
}

TEST_CASE("One Euro filter: a higher beta lags less on a ramp, a constant stays constant") {
    auto lag = [](double beta) {
        one_euro_params p;
        p.min_cutoff = 1;
        p.beta = beta;
        one_euro f(p);
        float x = 0;
        for (int n = 0; n <= 60; ++n) {
            x = float(n * 5);  // 150 units/s at 30 frames/s
            f.filter(&x, 1, n / 30.0);
        }
        return 300.0 - double(x);
    };
    CHECK(lag(0) > 0);
    CHECK(lag(0.1) < lag(0) / 2);
    one_euro f;
    for (int n = 0; n < 10; ++n) {
        float x = 7.25f;
        f.filter(&x, 1, n / 30.0);
        CHECK(x == 7.25f);
    }
}

TEST_CASE("boxes: IoU, the part inside the frame, the box from joints") {
    CHECK(iou({0, 0, 10, 10}, {0, 0, 10, 10}) == doctest::Approx(1));
    CHECK(iou({0, 0, 10, 10}, {5, 0, 10, 10}) == doctest::Approx(50.0 / 150));
    CHECK(iou({0, 0, 10, 10}, {20, 0, 10, 10}) == 0);
    CHECK(iou({0, 0, 0, 10}, {0, 0, 0, 10}) == 0);
    CHECK(fraction_inside({-5, 0, 10, 10}, 100, 100) == doctest::Approx(0.5));
    CHECK(fraction_inside({200, 0, 10, 10}, 100, 100) == 0);
    // Joints spanning 100 x 60 about (150, 230): a square of 130 about the same centre.
    const box4 b = box_from_joints(joints_in({100, 200, 100, 60}), 1.3f);
    CHECK(b[2] == doctest::Approx(130));
    CHECK(b[3] == doctest::Approx(130));
    CHECK(b[0] + b[2] / 2 == doctest::Approx(150));
    CHECK(b[1] + b[3] / 2 == doctest::Approx(230));
    // Joints spread over a whole crop box give a box 1.3 times larger: IoU 1 / 1.69 < 0.6,
    // which does not agree.
    const box4 crop{100, 100, 200, 200};
    CHECK(iou(box_from_joints(joints_in(crop), 1.3f), crop) < tracker_options{}.agree_iou);
}

TEST_CASE("tracker: the detector's schedule, ids kept across frames, a hand that leaves and comes back") {
    tracker_options o;
    o.max_hands = 2;
    o.detect_every = 5;
    tracker t(o);
    // Frame 0: no hand followed, the detector runs, finds one.
    REQUIRE(t.wants_detection(0, 640, 480));
    t.apply_detections({detection(100, 100, 200)}, 0);
    REQUIRE(t.tracks().size() == 1);
    CHECK(t.tracks()[0].id == 0);
    CHECK(t.tracks()[0].source == "detected");
    // Frames 1..4: the box follows the joints (moving 10 px a frame), no detector.
    for (int f = 0; f < 4; ++f) {
        const box4 hand{110.0f + 10 * f, 110, 160, 160};  // joints inside the box
        t.update_from_joints(0, joints_in(hand));
        t.drop_lost(f);
        CHECK(t.tracks()[0].agreed);
        CHECK(t.tracks()[0].box[2] == doctest::Approx(160 * 1.3));
        CHECK_FALSE(t.wants_detection(f + 1, 640, 480));
        CHECK(t.tracks()[0].source == "tracked");
    }
    // Frame 5: detect_every frames after the last run; the detection continues hand 0 and
    // a second hand starts hand 1.
    t.update_from_joints(0, joints_in({150, 110, 160, 160}));
    CHECK(t.wants_detection(5, 640, 480));
    t.apply_detections({detection(130, 90, 200), detection(400, 200, 150, 0.8f)}, 5);
    REQUIRE(t.tracks().size() == 2);
    CHECK(t.tracks()[0].id == 0);
    CHECK(t.tracks()[0].source == "detected");
    CHECK(t.tracks()[0].box[0] == 130);
    CHECK(t.tracks()[1].id == 1);
    // Joints that disagree with their box (spread over a box far away): the box stays,
    // the detector runs on the next frame.
    const box4 kept = t.tracks()[1].box;
    t.update_from_joints(0, joints_in({160, 120, 140, 140}));
    t.update_from_joints(1, joints_in({0, 0, 600, 450}));
    CHECK_FALSE(t.tracks()[1].agreed);
    CHECK(t.tracks()[1].box == kept);
    CHECK(t.wants_detection(6, 640, 480));
    // Frame 6: only hand 0 found: hand 1 (it disagreed) is dropped; hand 0 keeps its id.
    t.apply_detections({detection(135, 90, 200)}, 6);
    REQUIRE(t.tracks().size() == 1);
    CHECK(t.tracks()[0].id == 0);
    // Frame 7: the hand leaves (nothing found): dropped, and then the detector runs on every
    // frame until a hand is back.
    t.update_from_joints(0, joints_in({150, 105, 170, 170}));
    CHECK(t.tracks()[0].agreed);
    CHECK_FALSE(t.wants_detection(7, 640, 480));
    CHECK_FALSE(t.wants_detection(10, 640, 480));
    CHECK(t.wants_detection(11, 640, 480));  // detect_every frames after frame 6's run
    t.apply_detections({}, 11);
    CHECK(t.tracks().empty());
    CHECK(t.wants_detection(12, 640, 480));
    // It comes back where it was within id_memory frames: the same id; elsewhere: a new one.
    t.apply_detections({detection(135, 95, 200)}, 12);
    REQUIRE(t.tracks().size() == 1);
    CHECK(t.tracks()[0].id == 0);
    t.update_from_joints(0, joints_in({0, 0, 640, 480}));  // disagrees
    t.apply_detections({}, 13);
    CHECK(t.tracks().empty());
    t.apply_detections({detection(450, 300, 150)}, 14);  // IoU 0.125 with hand 1's last box
    REQUIRE(t.tracks().size() == 1);
    CHECK(t.tracks()[0].id == 2);
    CHECK(t.ids_given() == 3);
    // A frame of another size starts afresh.
    CHECK(t.wants_detection(17, 320, 240));
    CHECK(t.tracks().empty());
}

TEST_CASE("tracker: --detect-every 0 never runs the detector, the box follows the joints") {
    tracker_options o;
    o.detect_every = 0;
    tracker t(o);
    CHECK_FALSE(t.wants_detection(0, 640, 480));
    t.add_given({100, 100, 200, 200}, 0);
    t.update_from_joints(0, joints_in({300, 200, 100, 100}));  // far: would disagree
    CHECK(t.tracks()[0].box[2] == doctest::Approx(130));
    CHECK(t.tracks()[0].agreed);
    CHECK_FALSE(t.wants_detection(1, 640, 480));
    // A box that leaves the frame (less than a quarter of it inside) drops the hand.
    t.update_from_joints(0, joints_in({620, 200, 100, 100}));
    t.drop_lost(1);
    REQUIRE(t.tracks().size() == 1);  // 27% inside
    t.update_from_joints(0, joints_in({650, 200, 100, 100}));
    t.drop_lost(2);
    CHECK(t.tracks().empty());
}
