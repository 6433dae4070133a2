// Reads what a C++ program needs from ONNX protobuf files without linking protobuf:
// model.onnx's metadata_props and a TensorProto such as test_data_set_0/input_0.pb.
// Protobuf wire format: each field is a varint key (field number << 3 | wire type) and then a
// varint (type 0), 8 bytes (1), a length-prefixed blob (2) or 4 bytes (5).
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace onnx_proto {

using Bytes = std::string;

inline uint64_t varint(const Bytes& b, size_t& pos) {
  uint64_t value = 0;
  for (int shift = 0; pos < b.size(); shift += 7) {
    uint8_t byte = static_cast<uint8_t>(b[pos++]);
    value |= uint64_t(byte & 0x7f) << shift;
    if (byte < 0x80) return value;
  }
  throw std::runtime_error("truncated protobuf varint");
}

// Calls visit(field, wire, varint value, blob) for every field of one message.
inline void fields(const Bytes& b,
                   const std::function<void(int, int, uint64_t, const Bytes&)>& visit) {
  size_t pos = 0;
  while (pos < b.size()) {
    uint64_t key = varint(b, pos);
    int field = int(key >> 3), wire = int(key & 7);
    if (wire == 0) {
      visit(field, wire, varint(b, pos), Bytes());
    } else if (wire == 2 || wire == 1 || wire == 5) {
      size_t n = wire == 2 ? size_t(varint(b, pos)) : (wire == 1 ? 8 : 4);
      if (pos + n > b.size()) throw std::runtime_error("truncated protobuf field");
      visit(field, wire, 0, b.substr(pos, n));
      pos += n;
    } else {
      throw std::runtime_error("unsupported protobuf wire type " + std::to_string(wire));
    }
  }
}

inline Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

// ModelProto field 14: metadata_props, StringStringEntryProto {key = 1, value = 2}.
inline std::map<std::string, std::string> metadata(const Bytes& model) {
  std::map<std::string, std::string> props;
  fields(model, [&](int field, int wire, uint64_t, const Bytes& entry) {
    if (field != 14 || wire != 2) return;
    std::string key, value;
    fields(entry, [&](int f, int, uint64_t, const Bytes& v) {
      if (f == 1) key = v;
      if (f == 2) value = v;
    });
    props[key] = value;
  });
  return props;
}

struct Tensor {
  std::vector<int64_t> dims;
  std::vector<float> data;
};

// TensorProto: dims = 1, data_type = 2 (1 is float32), raw_data = 9 (little-endian floats).
inline Tensor tensor(const Bytes& bytes) {
  Tensor t;
  uint64_t type = 0;
  fields(bytes, [&](int field, int wire, uint64_t v, const Bytes& blob) {
    if (field == 1 && wire == 0) t.dims.push_back(int64_t(v));
    if (field == 1 && wire == 2)
      for (size_t p = 0; p < blob.size();) t.dims.push_back(int64_t(varint(blob, p)));
    if (field == 2) type = v;
    if (field == 9) {
      t.data.resize(blob.size() / sizeof(float));
      std::memcpy(t.data.data(), blob.data(), blob.size());
    }
  });
  if (type != 1) throw std::runtime_error("tensor data_type is not float32");
  return t;
}

// lenetc writes lists as JSON; class_labels is a list of strings: ["0", "1", ...].
inline std::vector<std::string> json_strings(const std::string& json) {
  std::vector<std::string> out;
  for (size_t i = json.find('"'); i != std::string::npos; i = json.find('"', i + 1)) {
    size_t end = json.find('"', i + 1);
    out.push_back(json.substr(i + 1, end - i - 1));
    i = end;
  }
  return out;
}

}  // namespace onnx_proto
