/* crc32c: published test vectors (RFC 3720 B.4, LevelDB's crc32c_test), hardware and
 * portable paths agreeing on every length and alignment, masking. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "tap.h"

static void vectors(uint32_t (*fn)(uint32_t, const void *, size_t), const char *name)
{
  uint8_t buf[32];

  memset(buf, 0, sizeof(buf));
  ok(fn(0, buf, 32) == 0x8a9136aa, "%s: 32 zero bytes", name);
  memset(buf, 0xff, sizeof(buf));
  ok(fn(0, buf, 32) == 0x62a8ab43, "%s: 32 0xff bytes", name);
  for (int i = 0; i < 32; i++)
    buf[i] = (uint8_t)i;
  ok(fn(0, buf, 32) == 0x46dd794e, "%s: ascending 0..31", name);
  for (int i = 0; i < 32; i++)
    buf[i] = (uint8_t)(31 - i);
  ok(fn(0, buf, 32) == 0x113fdb5c, "%s: descending 31..0", name);
  ok(fn(0, "123456789", 9) == 0xe3069283, "%s: \"123456789\"", name);
  ok(fn(0, "", 0) == 0, "%s: empty input", name);
  /* An iSCSI read command PDU (RFC 3720 B.4). */
  {
    static const uint8_t pdu[48] = { 0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                     0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18,
                                     0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0 };
    ok(fn(0, pdu, sizeof(pdu)) == 0xd9963a56, "%s: iSCSI read PDU", name);
  }
  ok(fn(fn(0, "hello ", 6), "world", 5) == fn(0, "hello world", 11), "%s: extend = whole", name);
}

int main(void)
{
  uint8_t *buf = malloc(70000);
  int agree = 1;
  uint32_t c;

  vectors(ck_crc32c_extend_sw, "portable");
  vectors(ck_crc32c_extend_hw, "hardware");
  vectors(ck_crc32c_extend, ck_crc32c_impl());

  srand(7);
  for (int i = 0; i < 70000; i++)
    buf[i] = (uint8_t)rand();
  for (int off = 0; off < 9; off++)
    for (size_t len = 0; len < 300; len++)
      if (ck_crc32c_extend_sw(0x1234, buf + off, len) != ck_crc32c_extend_hw(0x1234, buf + off, len))
        agree = 0;
  ok(agree, "hardware and portable agree on lengths 0..299 at 9 alignments");
  ok(ck_crc32c_extend_sw(0, buf, 70000) == ck_crc32c_extend_hw(0, buf, 70000), "agree on 70000 bytes");
  {
    /* around the three-stream block boundaries (3 x 256 and 3 x 8192 bytes) */
    static const size_t lens[] = { 767, 768, 769, 1535, 24575, 24576, 24577, 49152, 49159, 69000 };
    int agree3 = 1;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
      for (int off = 0; off < 3; off++)
        if (ck_crc32c_extend_sw(7, buf + off, lens[i]) != ck_crc32c_extend_hw(7, buf + off, lens[i]))
          agree3 = 0;
    ok(agree3, "agree around the 3-stream block boundaries");
  }

  c = ck_crc32c("foo", 3);
  ok(ck_crc32c_mask(c) != c, "mask changes the value");
  ok(ck_crc32c_unmask(ck_crc32c_mask(c)) == c, "unmask(mask(c)) == c");
  ok(ck_crc32c_mask(ck_crc32c_mask(c)) != c, "mask is not an involution");
  /* From the fixtures' MANIFEST: serving_counter_tf1's `counter` is float 0.0 (four zero
   * bytes) and TensorFlow stored its masked crc32c as 3a117ba6. */
  {
    const uint8_t zero[4] = { 0, 0, 0, 0 };
    ok(ck_crc32c_mask(ck_crc32c(zero, 4)) == 0x3a117ba6, "masked crc of float 0.0 matches TensorFlow's");
  }
  free(buf);
  return tap_done();
}
