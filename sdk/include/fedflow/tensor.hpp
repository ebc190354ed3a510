// fedflow/tensor.hpp: arrays with their element type and shape, the same in
// every language. Header-only, standard C++17.
//
//   fedflow::Tensor w = fedflow::Tensor::zeros(ctx, fedflow::DType::float32, {10, 64});  // shared memory
//   float* p = w.data_as<float>();
//   out["weights"] = w.to_value();
//
//   fedflow::Tensor in = fedflow::Tensor::from(result.at("weights"), "weights");       // in a server
//   if (in.dtype() != fedflow::DType::float32 || in.shape() != std::vector<std::int64_t>{10, 64}) ...
//
// A tensor travels as the dict
//
//   {"$tensor": {"dtype": "float32", "shape": [10, 64], "data": <Bytes>}}
//
// (data: the elements in C order, little-endian, prod(shape) * element size
// bytes). Python tasks send numpy arrays and torch tensors as exactly this
// dict and receive it as numpy arrays (docs/python.md); result.json and
// report.json show it with data as a $bytes file.
#ifndef FEDFLOW_TENSOR_HPP
#define FEDFLOW_TENSOR_HPP

#include <fedflow/task.hpp>
#include <fedflow/value.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace fedflow {

// Element types, with numpy's names (bfloat16 as torch's).
enum class DType : std::uint8_t {
    boolean,
    int8,
    uint8,
    int16,
    uint16,
    int32,
    uint32,
    int64,
    uint64,
    float16,
    bfloat16,
    float32,
    float64,
    complex64,
    complex128,
};

namespace detail {
struct DTypeInfo {
    DType dtype;
    const char* name;
    std::size_t size;
};
inline constexpr DTypeInfo dtypes[] = {
    {DType::boolean, "bool", 1},    {DType::int8, "int8", 1},           {DType::uint8, "uint8", 1},
    {DType::int16, "int16", 2},     {DType::uint16, "uint16", 2},       {DType::int32, "int32", 4},
    {DType::uint32, "uint32", 4},   {DType::int64, "int64", 8},         {DType::uint64, "uint64", 8},
    {DType::float16, "float16", 2}, {DType::bfloat16, "bfloat16", 2},   {DType::float32, "float32", 4},
    {DType::float64, "float64", 8}, {DType::complex64, "complex64", 8}, {DType::complex128, "complex128", 16},
};
}  // namespace detail

// "float32", ...
inline const char* dtype_name(DType t) noexcept { return detail::dtypes[static_cast<std::size_t>(t)].name; }
// Bytes per element.
inline std::size_t dtype_size(DType t) noexcept { return detail::dtypes[static_cast<std::size_t>(t)].size; }
// The DType of a name; throws TypeError for a name that is none.
inline DType dtype_from_name(std::string_view name) {
    for (const auto& d : detail::dtypes)
        if (name == d.name) return d.dtype;
    std::string known;
    for (const auto& d : detail::dtypes) known += (known.empty() ? "" : ", ") + std::string(d.name);
    throw TypeError("dtype '" + std::string(name) + "' is not one of " + known);
}

// The DType of a C++ element type (data_as<T>).
template <class T>
constexpr DType dtype_of() {
    static_assert(std::is_arithmetic_v<T>, "fedflow::dtype_of: T must be bool, an integer or a floating-point type");
    if constexpr (std::is_same_v<T, bool>) return DType::boolean;
    else if constexpr (std::is_floating_point_v<T>) {
        static_assert(sizeof(T) == 4 || sizeof(T) == 8, "fedflow::dtype_of: float or double");
        return sizeof(T) == 4 ? DType::float32 : DType::float64;
    } else if constexpr (std::is_signed_v<T>) {
        return sizeof(T) == 1   ? DType::int8
               : sizeof(T) == 2 ? DType::int16
               : sizeof(T) == 4 ? DType::int32
                                : DType::int64;
    } else {
        return sizeof(T) == 1   ? DType::uint8
               : sizeof(T) == 2 ? DType::uint16
               : sizeof(T) == 4 ? DType::uint32
                                : DType::uint64;
    }
}

// An array: element type, shape and the bytes of its elements. A handle, as
// Bytes is: copies share the data.
class Tensor {
public:
    // Throws TypeError when a dimension is negative or data does not hold
    // exactly prod(shape) elements.
    Tensor(DType dtype, std::vector<std::int64_t> shape, Bytes data)
        : dtype_(dtype), shape_(std::move(shape)), data_(std::move(data)) {
        std::size_t need = bytes_for(dtype_, shape_);
        if (need != data_.size())
            throw TypeError(std::string("a ") + dtype_name(dtype_) + " tensor of shape " + shape_text(shape_) +
                            " needs " + std::to_string(need) + " bytes, the data has " + std::to_string(data_.size()));
    }

    // A zero-filled tensor in shared memory (ctx.bytes): put it in a result
    // and it reaches the host without a copy.
    static Tensor zeros(Context& ctx, DType dtype, std::vector<std::int64_t> shape) {
        std::size_t n = bytes_for(dtype, shape);
        return Tensor(dtype, std::move(shape), ctx.bytes(n));
    }

    // Whether v is a tensor's dict: {"$tensor": {"dtype", "shape", "data"}}.
    static bool is(const Value& v) noexcept {
        if (!v.is<Dict>()) return false;
        const Dict& d = v.as<Dict>();
        const Value* t = d.find(marker);
        if (d.size() != 1 || t == nullptr || !t->is<Dict>()) return false;
        const Dict& f = t->as<Dict>();
        const Value *dtype = f.find("dtype"), *shape = f.find("shape"), *data = f.find("data");
        return f.size() == 3 && dtype != nullptr && dtype->is<std::string>() && shape != nullptr && shape->is<List>() &&
               data != nullptr && data->is<Bytes>();
    }

    // The tensor in v, viewing its data (no copy). Throws TypeError naming
    // `what` (the key, say) when v is no tensor or is inconsistent.
    static Tensor from(const Value& v, std::string_view what = "value") {
        if (!is(v))
            throw TypeError(std::string(what) + " is a " + v.type_name() +
                            ", not a tensor ({\"$tensor\": {\"dtype\", \"shape\", \"data\"}})");
        const Dict& f = v.as<Dict>().at(marker).as<Dict>();
        try {
            std::vector<std::int64_t> shape;
            for (const Value& d : f.at("shape").as<List>()) shape.push_back(d.as<std::int64_t>());
            return Tensor(dtype_from_name(f.at("dtype").as<std::string>()), std::move(shape), f.at("data").as<Bytes>());
        } catch (const TypeError& e) {
            throw TypeError(std::string(what) + ": " + e.what());
        }
    }

    // The dict a result holds: {"$tensor": {"dtype", "shape", "data"}}.
    Value to_value() const {
        List shape;
        shape.reserve(shape_.size());
        // emplace_back, not push_back(Value): g++ 12 at -O2 warns
        // (-Wmaybe-uninitialized) about the moved-from temporary, and
        // plugins build this header with -Werror.
        for (std::int64_t d : shape_) shape.emplace_back(d);
        return Value(Dict{{marker, Dict{{"dtype", dtype_name(dtype_)}, {"shape", std::move(shape)}, {"data", data_}}}});
    }

    DType dtype() const noexcept { return dtype_; }
    const std::vector<std::int64_t>& shape() const noexcept { return shape_; }
    std::size_t ndim() const noexcept { return shape_.size(); }
    // The number of elements: the product of the shape (1 for a 0-d tensor).
    std::size_t numel() const noexcept { return data_.size() / dtype_size(dtype_); }
    const Bytes& data() const noexcept { return data_; }
    Bytes& data() noexcept { return data_; }

    // The elements as T. Throws TypeError when T is not the dtype (float for
    // float32, ...) or the data is not aligned for T (buffers of ctx.bytes
    // and of inputs always are).
    template <class T>
    T* data_as() {
        check_as<T>();
        return reinterpret_cast<T*>(data_.data());
    }
    template <class T>
    const T* data_as() const {
        check_as<T>();
        return reinterpret_cast<const T*>(data_.data());
    }

    static constexpr const char* marker = "$tensor";

private:
    static std::string shape_text(const std::vector<std::int64_t>& shape) {
        std::string s = "[";
        for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + "]";
    }

    static std::size_t bytes_for(DType dtype, const std::vector<std::int64_t>& shape) {
        std::size_t n = dtype_size(dtype);
        for (std::int64_t d : shape) {
            if (d < 0) throw TypeError("tensor shape " + shape_text(shape) + " has a negative dimension");
            if (d != 0 && n > std::numeric_limits<std::size_t>::max() / static_cast<std::size_t>(d))
                throw TypeError("tensor shape " + shape_text(shape) + " is too large");
            n *= static_cast<std::size_t>(d);
        }
        return n;
    }

    template <class T>
    void check_as() const {
        if (dtype_of<T>() != dtype_)
            throw TypeError(std::string("the tensor holds ") + dtype_name(dtype_) + ", not " +
                            dtype_name(dtype_of<T>()));
        if (reinterpret_cast<std::uintptr_t>(data_.data()) % alignof(T) != 0)
            throw TypeError(std::string("the tensor's data is not aligned for ") + dtype_name(dtype_));
    }

    DType dtype_;
    std::vector<std::int64_t> shape_;
    Bytes data_;
};

}  // namespace fedflow

#endif  // FEDFLOW_TENSOR_HPP
