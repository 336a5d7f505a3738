package connectors

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/firmbridge/firmbridge"
)

// payloadTextRef is PayloadText as it was before its pooled buffers and
// the base64 shortcut: the reference FuzzPayloadText holds it to.
func payloadTextRef(env firmbridge.Envelope) (string, error) {
	raw := bytes.TrimSpace(env.Payload)
	if len(raw) == 0 || string(raw) == "null" {
		return "", &firmbridge.Reject{Code: firmbridge.RejectMissingField, Field: "payload", Message: "payload is required"}
	}
	enc := strings.ToLower(strings.TrimSpace(env.PayloadEncoding))
	if raw[0] != '"' {
		if enc != "" {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload",
				Message: fmt.Sprintf("payload_encoding %q needs the payload as a JSON string", env.PayloadEncoding)}
		}
		if raw[0] != '{' || !json.Valid(raw) {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "payload",
				Message: "payload is neither a JSON object nor a JSON string"}
		}
		return string(raw), nil
	}
	s, ok := plainJSONString(raw)
	if !ok {
		s, ok = unquoteSimple(raw)
	}
	if !ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "payload", Message: "payload is not a valid JSON string"}
		}
	}
	switch enc {
	case "":
		return strings.TrimPrefix(s, "\ufeff"), nil
	case "base64":
	default:
		return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload_encoding",
			Message: fmt.Sprintf("payload_encoding %q is not supported (want base64 or none)", env.PayloadEncoding)}
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(s), "=")); err != nil {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload", Message: "payload is not valid base64"}
		}
	}
	return decodeCharsetRef(b, env.Charset)
}

// decodeCharsetRef is DecodeCharset with decodeGB18030Ref.
func decodeCharsetRef(b []byte, charset string) (string, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(charset)), "-", "") {
	case "":
		if utf8.Valid(b) {
			return string(b), nil
		}
		return decodeGB18030Ref(b)
	case "utf8":
		if !utf8.Valid(b) {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload", Message: "payload declared UTF-8 is not valid UTF-8"}
		}
		return string(b), nil
	case "gb18030", "gbk", "gb2312", "cp936", "euccn":
		return decodeGB18030Ref(b)
	}
	return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "charset",
		Message: fmt.Sprintf("charset %q is not supported (want utf-8, gb18030 or gbk)", charset)}
}

// decodeGB18030Ref is GB18030 decoding with a new decoder per call.
func decodeGB18030Ref(b []byte) (string, error) {
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(b)
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) {
		return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload", Message: "payload is not valid GB18030"}
	}
	return string(out), nil
}

// gbSeeds are texts whose GB18030 encodings seed the fuzz targets: ASCII,
// two-byte ideographs, four-byte sequences (𠀀, €-adjacent symbols),
// full-width forms, a BOM and zero-width characters.
var gbSeeds = []string{
	"91350100M000100Y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,\"1,234.56\",160.49,88.20,72.29,万元",
	"企业统一社会信用代码,月份,进出口标志,金额,币制", "914403005767880647,2024-10,I,\"22,178.91\",EUR",
	"€", "𠀀𠀁", "ＡＢＣ１２３　", "\ufeffa,b", "a\u200bb\u2060", "ß·—–", "", "plain ascii", "\x7f\x00",
}

func FuzzDecodeGB18030(f *testing.F) {
	for _, s := range gbSeeds {
		b, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add([]byte(s))
		if len(b) > 1 {
			f.Add(b[:len(b)-1]) // a sequence cut short
		}
	}
	for _, b := range [][]byte{{0x81, 0x30, 0x81}, {0x80}, {0xff}, {0x81, 0x30, 0x81, 0x30}, {0x84, 0x31, 0xa4, 0x39},
		{0xe3, 0x32, 0x9a, 0x35}, {0xfe, 0xfe}, {0xa1, 0x7f}, {'a', 0x81}} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeGB18030(b)
		want, wantErr := decodeGB18030Ref(b)
		if got != want || !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("decodeGB18030(%x) = %q, %v; reference %q, %v", b, got, err, want, wantErr)
		}
	})
}

func FuzzPayloadText(f *testing.F) {
	for _, s := range gbSeeds {
		b, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(s))
		if err != nil {
			f.Fatal(err)
		}
		for _, data := range [][]byte{b, []byte(s)} {
			std, _ := json.Marshal(base64.StdEncoding.EncodeToString(data))
			raw, _ := json.Marshal(base64.RawStdEncoding.EncodeToString(data))
			f.Add(std, "base64", "gb18030")
			f.Add(raw, " Base64 ", "GBK")
			f.Add(std, "base64", "")
			f.Add(std, "base64", "utf-8")
			f.Add(std, "base64", "latin1")
		}
		p, _ := json.Marshal(s)
		f.Add(p, "", "")
	}
	for _, p := range []string{`" QUJD "`, `"QUJD\n"`, `"QU\u004aD"`, `"QUJD=="`, `"QUJ=D"`, `"Q"`, `""`, `null`, ` `,
		`{"a":1}`, `[1]`, `"\ud800"`, "\"\xff\"", `"QUJD\u2028"`, "\"\u3000QUJD\u3000\""} {
		f.Add([]byte(p), "base64", "gb18030")
		f.Add([]byte(p), "", "")
		f.Add([]byte(p), "hex", "")
	}
	f.Fuzz(func(t *testing.T, payload []byte, encoding, charset string) {
		env := firmbridge.Envelope{Payload: payload, PayloadEncoding: encoding, Charset: charset}
		got, err := PayloadText(env)
		want, wantErr := payloadTextRef(env)
		if got != want || !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("PayloadText(%q, %q, %q) = %q, %v; reference %q, %v", payload, encoding, charset, got, err, want, wantErr)
		}
	})
}
