// Embedding a lenetc model in C++ with libtorch: load model.torchscript.pt, read how to feed it
// from model.onnx's metadata, run the golden inputs, print each sample's predicted class.
//
//   make -C examples/cpp                     (libtorch from the installed torch wheel)
//   examples/cpp/classify build/lenet5
//
// lenetc verify drives it too (row libtorch[c++]) with `--cases DIR`: raw float32 inputs listed
// in DIR/cases.txt ("NAME d0 d1 ..."), each output written to NAME.out0 with NAME.out0.shape.
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "onnx_proto.h"

static at::Tensor forward(torch::jit::script::Module& model, at::Tensor x) {
  torch::NoGradGuard no_grad;
  return model.forward({x}).toTensor().contiguous();
}

static int run_cases(torch::jit::script::Module& model, const std::string& dir) {
  std::ifstream list(dir + "/cases.txt");
  for (std::string line; std::getline(list, line);) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    std::vector<int64_t> dims;
    for (int64_t d; words >> d;) dims.push_back(d);
    onnx_proto::Bytes raw = onnx_proto::read_file(dir + "/" + name + ".in");
    at::Tensor x = torch::from_blob(raw.data(), dims, torch::kFloat32).clone();
    at::Tensor y = forward(model, x);
    std::ofstream(dir + "/" + name + ".out0", std::ios::binary)
        .write(static_cast<const char*>(y.data_ptr()), y.numel() * sizeof(float));
    std::ofstream shape(dir + "/" + name + ".out0.shape");
    for (int64_t d : y.sizes()) shape << d << " ";
  }
  return 0;
}

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: classify BUILD_DIR [--cases DIR]\n";
    return 2;
  }
  std::string build = argv[1];
  torch::jit::script::Module model = torch::jit::load(build + "/model.torchscript.pt");
  model.eval();
  if (argc >= 4 && std::string(argv[2]) == "--cases") return run_cases(model, argv[3]);

  // What the model says about itself: model.onnx's metadata_props (the README lists the keys).
  auto meta = onnx_proto::metadata(onnx_proto::read_file(build + "/model.onnx"));
  auto labels = onnx_proto::json_strings(meta["class_labels"]);
  std::cout << meta["spec_name"] << ": input " << meta["input_shape"] << ", normalized with mean "
            << meta["normalization_mean"] << " std " << meta["normalization_std"] << "\n";

  // The golden inputs are already normalized; raw data would first become (raw - mean) / std.
  auto input = onnx_proto::tensor(onnx_proto::read_file(build + "/test_data_set_0/input_0.pb"));
  auto expected = onnx_proto::tensor(onnx_proto::read_file(build + "/test_data_set_0/output_0.pb"));
  at::Tensor x = torch::from_blob(input.data.data(), input.dims, torch::kFloat32);
  at::Tensor logits = forward(model, x);
  at::Tensor best = logits.argmax(1);
  for (int64_t i = 0; i < logits.size(0); ++i)
    std::cout << "sample " << i << ": " << labels.at(best[i].item<int64_t>()) << "\n";
  at::Tensor want = torch::from_blob(expected.data.data(), expected.dims, torch::kFloat32);
  std::printf("max |logits - output_0.pb| = %.2e\n", (logits - want).abs().max().item<float>());
  return 0;
} catch (const std::exception& e) {
  std::string what = e.what();
  std::cerr << what.substr(0, what.find('\n')) << "\n";
  return 1;
}
