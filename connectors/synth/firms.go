// Package synth generates realistic, deterministic provider data for the
// demo, for tests and for benchmarks: firms with valid USCCs, and envelopes
// in every provider format (see PROVIDERS.md), with the providers' quirks
// and, on request, a share of malformed records for dead-letter tests.
//
// The same seed always yields the same firms, the same envelopes and the
// same record ids. Record ids are derived from each record's natural key
// (firm, period, application number...), and periodic records (returns,
// ratings, meter readings, declarations) draw their values from a stream
// seeded by that key, so they keep their ids and contents when the span of
// months or the set of firms changes.
package synth

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/firmbridge/firmbridge/connectors"
)

// Firm is a generated enterprise.
type Firm struct {
	USCC       string
	Name       string
	City       string
	Industry   string // electronics, software, energy, biotech, machinery, materials, optoelectronics
	SmallScale bool   // 小规模纳税人: files VAT quarterly, in 万元
	Exporter   bool   // declares imports and exports at customs
	Employees  int
	// MonthlySales is the firm's typical monthly sales in yuan.
	MonthlySales float64
}

// City is a city firms are registered in.
type City struct {
	Name     string
	Division string // administrative division code (positions 3-8 of a USCC)
	AreaCode string // telephone area code, used in grid account numbers
}

// Cities firms are generated in.
var Cities = []City{
	{"福州", "350100", "0591"},
	{"厦门", "350200", "0592"},
	{"深圳", "440300", "0755"},
	{"杭州", "330100", "0571"},
	{"苏州", "320500", "0512"},
}

type industry struct {
	key, word string
	ipc       []string
	titles    []string
}

var industries = []industry{
	{"electronics", "电子科技", []string{"H05K 1/02", "H01L 21/02", "G06F 1/16", "H01L 23/31"},
		[]string{"一种多层电路板及其制备方法", "一种芯片封装结构", "一种低功耗电源管理电路", "一种散热型电子设备外壳"}},
	{"software", "软件技术", []string{"G06F 16/27", "G06N 3/08", "H04L 9/32", "G06Q 40/02"},
		[]string{"一种分布式数据同步方法", "一种基于深度学习的图像识别方法", "一种数据加密传输系统", "一种供应链金融风控方法"}},
	{"energy", "新能源科技", []string{"H01M 10/42", "H02J 7/00", "H01M 4/36", "H02J 3/38"},
		[]string{"一种电池管理方法", "一种储能变流器控制系统", "一种锂离子电池正极材料", "一种光伏并网逆变装置"}},
	{"biotech", "生物医药", []string{"A61K 31/00", "C12N 15/11", "A61P 35/00", "C07K 16/28"},
		[]string{"一种抗肿瘤药物组合物", "一种重组蛋白的纯化方法", "一种核酸检测试剂盒", "一种单克隆抗体及其应用"}},
	{"machinery", "精密机械", []string{"B23Q 3/06", "B25J 9/16", "F16H 57/02", "B23P 19/00"},
		[]string{"一种数控机床夹具", "一种工业机器人关节减速器", "一种自动化装配生产线", "一种齿轮箱润滑装置"}},
	{"materials", "新材料", []string{"C08L 63/00", "C04B 35/622", "B32B 27/08", "C08K 3/04"},
		[]string{"一种高导热环氧树脂复合材料", "一种陶瓷基复合材料的制备方法", "一种多层阻隔薄膜", "一种石墨烯改性涂料"}},
	{"optoelectronics", "光电技术", []string{"G02B 6/42", "H01S 5/02", "H01L 33/48", "G01J 1/42"},
		[]string{"一种光模块封装结构", "一种半导体激光器", "一种LED封装支架", "一种光功率检测装置"}},
}

var tradeNames = []string{"鑫", "华", "创", "恒", "达", "瑞", "智", "新", "源", "博", "远", "泰", "盛", "联", "海",
	"峰", "宏", "启", "芯", "云", "德", "安", "信", "睿", "凯", "锐", "航", "晨", "融", "闽", "鹭", "鹏", "钱", "吴"}

// Firms returns n firms with valid, distinct USCCs (correct check
// characters for both GB 32100 and the embedded GB 11714 organization
// code) and distinct, plausible names in Cities, across several industries.
//
// The names are drawn from about 81,000 (city, two trade characters,
// industry, company form); once nearly all are taken, a firm whose name
// is taken becomes a branch of that company (…有限公司第1分公司), which has
// a USCC of its own as branches do, so any n can be generated.
func Firms(seed int64, n int) []Firm {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5f1a5))
	firms := make([]Firm, 0, n)
	seenUSCC, seenName := map[string]bool{}, map[string]bool{}
	branches := map[string]int{} // name → branches named after it so far
	takenInARow := 0
	for len(firms) < n {
		city := Cities[rng.IntN(len(Cities))]
		ind := industries[rng.IntN(len(industries))]
		uscc := MakeUSCC(rng, "91", city.Division)
		name := city.Name + tradeNames[rng.IntN(len(tradeNames))] + tradeNames[rng.IntN(len(tradeNames))] + ind.word + "有限公司"
		if rng.IntN(6) == 0 {
			name = city.Name + tradeNames[rng.IntN(len(tradeNames))] + tradeNames[rng.IntN(len(tradeNames))] + ind.word + "股份有限公司"
		}
		if seenUSCC[uscc] {
			continue
		}
		if seenName[name] {
			// Drawing again keeps the sequence of firms of every seed as it
			// was, until the names run out.
			if takenInARow++; takenInARow < maxNameDraws {
				continue
			}
			branches[name]++
			name = fmt.Sprintf("%s第%d分公司", name, branches[name])
		}
		takenInARow = 0
		seenUSCC[uscc], seenName[name] = true, true
		small := rng.IntN(3) == 0
		employees := 15 + rng.IntN(400)
		sales := float64(employees) * (30_000 + rng.Float64()*50_000)
		if small {
			employees = 5 + rng.IntN(40)
			sales = 80_000 + rng.Float64()*300_000
		}
		firms = append(firms, Firm{
			USCC: uscc, Name: name, City: city.Name, Industry: ind.key,
			SmallScale: small, Exporter: rng.IntN(100) < 35, Employees: employees, MonthlySales: sales,
		})
	}
	return firms
}

// maxNameDraws is how many taken names in a row Firms draws before it
// names a branch instead: far more than ever happen before the names run
// out (at 90% of them taken, 100 in a row has odds of about 1 in 38,000).
const maxNameDraws = 100

// orgAlphabet is the GB 11714 character set used in organization codes.
const orgAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// MakeUSCC returns a valid USCC with the given registration authority and
// type (e.g. "91": market regulator, enterprise; "12": institution) and
// division code, and a random organization code whose GB 11714 check
// character is correct.
func MakeUSCC(rng *rand.Rand, authorityType, division string) string {
	body := make([]byte, 8)
	for i := range body {
		if i < 2 && rng.IntN(4) == 0 {
			body[i] = orgAlphabet[10+rng.IntN(len(orgAlphabet)-10)]
		} else {
			body[i] = byte('0' + rng.IntN(10))
		}
	}
	first17 := authorityType + division + string(body) + string(orgCheck(body))
	c, err := connectors.CheckChar(first17)
	if err != nil {
		panic(fmt.Sprintf("synth: %v", err))
	}
	return first17 + string(c)
}

// orgCheck is the GB 11714 check character of an 8-character organization code.
func orgCheck(body []byte) byte {
	w := [8]int{3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, c := range body {
		v := int(c - '0')
		if c >= 'A' {
			v = int(c-'A') + 10
		}
		sum += v * w[i]
	}
	switch c := 11 - sum%11; c {
	case 10:
		return 'X'
	case 11:
		return '0'
	default:
		return byte('0' + c)
	}
}

// Bank is a pledgee in patent pledges.
type Bank struct {
	Name string
	USCC string
}

// Banks returns the banks that take patent pledges, with valid USCCs.
func Banks(seed int64) []Bank {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xba4c))
	names := []string{"闽江商业银行股份有限公司", "东海银行股份有限公司", "钱塘农村商业银行股份有限公司",
		"鹏城银行股份有限公司", "姑苏银行股份有限公司", "海峡科技银行股份有限公司"}
	divs := []string{"350000", "310000", "330000", "440300", "320500", "350200"}
	out := make([]Bank, len(names))
	for i, n := range names {
		out[i] = Bank{Name: n, USCC: MakeUSCC(rng, "91", divs[i])}
	}
	return out
}

// Universities are co-applicants of some patents; they hold USCCs of
// public institutions (registration authority 1, type 2).
func universities(seed int64) []Bank {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x11))
	names := []string{"福州理工大学", "厦门海洋大学", "深圳湾科技大学", "杭州电子信息学院", "苏州工程技术大学"}
	out := make([]Bank, len(names))
	for i, n := range names {
		out[i] = Bank{Name: n, USCC: MakeUSCC(rng, "12", Cities[i].Division)}
	}
	return out
}

func hash64(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}
