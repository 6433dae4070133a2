// Reads the two things an embedding program needs from ONNX protobuf files, without a protobuf
// library: model.onnx's metadata_props (the JavaScript ONNX Runtime API does not expose them) and
// a TensorProto such as test_data_set_0/input_0.pb. Works in Node.js (require) and in a browser
// page (<script src="onnx_proto.js">, then `onnxProto`).
(function (root) {
  "use strict";

  // Protobuf wire format: each field is a varint key (field number << 3 | wire type), then a
  // varint (type 0), 8 bytes (1), a length-prefixed blob (2) or 4 bytes (5).
  function varint(buf, pos) {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = buf[pos++];
      value += (byte & 0x7f) * scale; // no bit ops: values may pass 2^31
      if (byte < 0x80) return [value, pos];
      scale *= 128;
    }
  }

  function* fields(buf) {
    let pos = 0;
    while (pos < buf.length) {
      let key;
      [key, pos] = varint(buf, pos);
      const field = Math.floor(key / 8);
      const wire = key % 8;
      if (wire === 0) {
        let v;
        [v, pos] = varint(buf, pos);
        yield [field, wire, v];
      } else if (wire === 2) {
        let n;
        [n, pos] = varint(buf, pos);
        yield [field, wire, buf.subarray(pos, pos + n)];
        pos += n;
      } else if (wire === 1 || wire === 5) {
        const n = wire === 1 ? 8 : 4;
        yield [field, wire, buf.subarray(pos, pos + n)];
        pos += n;
      } else {
        throw new Error(`unsupported protobuf wire type ${wire}`);
      }
    }
  }

  const utf8 = new TextDecoder();

  // ModelProto field 14: metadata_props, StringStringEntryProto {key = 1, value = 2}.
  // lenetc's values are strings; lists and numbers inside them are JSON.
  function metadata(modelBytes) {
    const props = {};
    for (const [field, wire, entry] of fields(modelBytes)) {
      if (field !== 14 || wire !== 2) continue;
      let key = "";
      let value = "";
      for (const [f, , v] of fields(entry)) {
        if (f === 1) key = utf8.decode(v);
        if (f === 2) value = utf8.decode(v);
      }
      props[key] = value;
    }
    return props;
  }

  // TensorProto: dims = 1 (repeated int64), data_type = 2 (1 = float32), name = 8, raw_data = 9
  // (little-endian), float_data = 4 (packed). Returns {name, dims, data: Float32Array}.
  function tensor(bytes) {
    const dims = [];
    let name = "";
    let type = 0;
    let data = null;
    for (const [field, wire, v] of fields(bytes)) {
      if (field === 1 && wire === 0) dims.push(v);
      if (field === 1 && wire === 2) {
        // packed dims
        for (let p = 0; p < v.length; ) {
          let d;
          [d, p] = varint(v, p);
          dims.push(d);
        }
      }
      if (field === 2) type = v;
      if (field === 8) name = utf8.decode(v);
      if (field === 9 || (field === 4 && wire === 2)) data = new Float32Array(Uint8Array.prototype.slice.call(v).buffer); // aligned copy
    }
    if (type !== 1) throw new Error(`tensor ${name}: data_type ${type}, expected 1 (float32)`);
    return { name, dims, data };
  }

  const api = { metadata, tensor };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.onnxProto = api;
})(this);
