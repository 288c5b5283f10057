package attention

import "math"

// ggmlBlock is the number of values per scale in llama.cpp's q8_0 and q4_0.
const ggmlBlock = 32

// q80 is llama.cpp's q8_0: per 32 values of a token, an FP16 scale
// d = max|x|/127 and signed 8-bit codes, x ≈ q*d (34 bytes per 32 values).
type q80 struct{}

func (q80) Name() string             { return "q8_0" }
func (q80) PerToken() bool           { return true }
func (q80) Storage() Storage         { return Storage{CodeBits: 8, ParamBits: 16, ParamFormat: "fp16"} }
func (q80) Params(rows, dim int) int { return rows * ((dim + ggmlBlock - 1) / ggmlBlock) }
func (q80) Encode(codes []uint8, params []float32, src []float32, rows, dim int) {
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += ggmlBlock {
			blk := src[r*dim+g : r*dim+min(g+ggmlBlock, dim)]
			d := absMax(blk) / 127
			var id float32
			if d != 0 {
				id = 1 / d
			}
			params[p] = roundHalf(d)
			p++
			for k, x := range blk {
				codes[r*dim+g+k] = uint8(int8(math.Round(float64(x * id))))
			}
		}
	}
}
func (q80) Decode(dst []float32, codes []uint8, params []float32, rows, dim int) {
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += ggmlBlock {
			d := params[p]
			p++
			for i := r*dim + g; i < r*dim+min(g+ggmlBlock, dim); i++ {
				dst[i] = float32(int8(codes[i])) * d
			}
		}
	}
}

// q40 is llama.cpp's q4_0: per 32 values of a token, an FP16 scale
// d = m/-8, where m is the value of largest magnitude, and 4-bit codes,
// x ≈ (q-8)*d (18 bytes per 32 values). The sign of d puts the extreme
// value exactly on code 0, using the asymmetric range [-8, 7] fully.
type q40 struct{}

func (q40) Name() string             { return "q4_0" }
func (q40) PerToken() bool           { return true }
func (q40) Storage() Storage         { return Storage{CodeBits: 4, ParamBits: 16, ParamFormat: "fp16"} }
func (q40) Params(rows, dim int) int { return rows * ((dim + ggmlBlock - 1) / ggmlBlock) }
func (q40) Encode(codes []uint8, params []float32, src []float32, rows, dim int) {
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += ggmlBlock {
			blk := src[r*dim+g : r*dim+min(g+ggmlBlock, dim)]
			// m is the first value of the greatest magnitude, 0 if all
			// are zeros.
			var m float32
			if amax := absMax(blk); amax != 0 {
				for _, x := range blk {
					if abs32(x) == amax {
						m = x
						break
					}
				}
			}
			d := m / -8
			var id float32
			if d != 0 {
				id = 1 / d
			}
			params[p] = roundHalf(d)
			p++
			for k, x := range blk {
				codes[r*dim+g+k] = uint8(min(15, int8(x*id+8.5)))
			}
		}
	}
}
func (q40) Decode(dst []float32, codes []uint8, params []float32, rows, dim int) {
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += ggmlBlock {
			d := params[p]
			p++
			for i := r*dim + g; i < r*dim+min(g+ggmlBlock, dim); i++ {
				dst[i] = float32(int(codes[i])-8) * d
			}
		}
	}
}

// nvfp4Block is the number of values per E4M3 scale in NVFP4.
const nvfp4Block = 16

// nvfp4 is NVIDIA's FP4 format: E2M1 values and an FP8 E4M3 scale per 16
// values, 4.5 bits per value, with the format's second-level FP32 scale
// per tensor. A per-tensor scale is calibrated offline and fixed, so it
// costs no bytes per token; uncalibrated, it is 1, as vLLM's FP8 KV cache
// uses scale 1 without calibration. Scale 1 puts the E4M3 block scale
// (max|x|/6 of 16 values) in E4M3's normal range, at full precision, for
// every block whose largest magnitude is between 0.094 and 2,688.
type nvfp4 struct{}

func (nvfp4) Name() string   { return "nvfp4" }
func (nvfp4) PerToken() bool { return true }
func (nvfp4) Params(rows, dim int) int {
	return rows * ((dim + nvfp4Block - 1) / nvfp4Block)
}
func (nvfp4) Storage() Storage { return Storage{CodeBits: 4, ParamBits: 8, ParamFormat: "fp8_e4m3"} }
func (c nvfp4) Encode(codes []uint8, params []float32, src []float32, rows, dim int) {
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += nvfp4Block {
			blk := src[r*dim+g : r*dim+min(g+nvfp4Block, dim)]
			bmax := absMax(blk)
			// The block's largest magnitude maps onto E2M1's largest, 6.
			s := fp8E4M3.round(bmax / 6)
			params[p] = s
			p++
			var v [nvfp4Block]float32
			if s != 0 {
				for k, x := range blk {
					v[k] = x / s
				}
			}
			fp4E2M1.encodeAll(codes[r*dim+g:], v[:len(blk)])
		}
	}
}
func (c nvfp4) Decode(dst []float32, codes []uint8, params []float32, rows, dim int) {
	p := 0
	for r := range rows {
		for g := 0; g < dim; g += nvfp4Block {
			s := params[p]
			p++
			for i := r*dim + g; i < r*dim+min(g+nvfp4Block, dim); i++ {
				dst[i] = fp4E2M1.decode(codes[i]) * s
			}
		}
	}
}
