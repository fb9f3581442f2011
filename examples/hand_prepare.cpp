// hand_prepare: writes a prepared weight file (handgraph::prepare_weights): the converted
// weights with every layer packed as the kernels use them, which model::load maps instead
// of reading and packing (README, "Prepared weights").
//
//   hand_prepare WEIGHTS.safetensors -o PREPARED.safetensors [--kernels NAME]
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli.hpp"
#include "handgraph/handgraph.hpp"

namespace {

const char* usage =
    "usage: hand_prepare WEIGHTS.safetensors -o PREPARED.safetensors [--kernels NAME]\n"
    "\n"
    "Writes a prepared weight file: the converted weights (tools/convert_weights.py) with\n"
    "every layer's weights packed as handgraph's kernels use them (BatchNorm folded in).\n"
    "Every binary and model::load take it wherever they take the converted file; it is\n"
    "mapped, not read and packed, so it loads several times faster, with bit-identical\n"
    "results. Keep the file in place while a program uses it (replace it by writing a new\n"
    "one, as this tool does: never truncate or edit it in place).\n"
    "\n"
    "  -o, --out FILE   the prepared file to write (not the input)\n"
    "  --kernels NAME   cap the instruction set as the other binaries do (avx512bw,\n"
    "                   fma3+avx2, sse2). A CPU without FMA (sse2) runs every layer in\n"
    "                   double and needs a file prepared with sse2; the others share one.\n";

int run(int argc, char** argv) {
    std::string in, out;
    handgraph::load_options options;
    for (cli::arguments args(argc, argv); args.next();) {
        const std::string& a = args.flag();
        if (a == "--help" || a == "-h") { std::cout << usage; return 0; }
        else if (a == "-o" || a == "--out") out = args.value();
        else if (a == "--kernels") options.kernels = args.value();
        else if (!a.empty() && a[0] == '-') throw args.unknown();
        else if (in.empty()) in = a;
        else throw handgraph::error("one input weight file only (got \"" + in + "\" and \"" + a + "\"; see --help)");
    }
    if (in.empty()) throw handgraph::error("no input weight file (see --help)");
    if (out.empty()) throw handgraph::error("no output: give -o PREPARED.safetensors (see --help)");
    cli::check_writable("-o", out);
    const auto t0 = std::chrono::steady_clock::now();
    handgraph::prepare_weights(in, out, options);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "wrote %s (prepared from %s in %.2f s)\n", out.c_str(), in.c_str(), s);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }
