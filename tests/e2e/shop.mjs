// End to end in a real browser: list -> add two products -> header badge shows 2 -> cart
// page -> apply SUMMER25 -> totals right -> checkout -> confirmation.
// Usage: SHOP_URL=http://127.0.0.1:3217 node tests/e2e/shop.mjs [screenshot.png]
import { chromium } from "playwright-core";

const base = process.env.SHOP_URL ?? "http://127.0.0.1:3217";
const screenshot = process.argv[2];
let passed = 0;
let failed = 0;

function check(name, ok, detail = "") {
  if (ok) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name} ${detail}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  check("product list shows 100 books", (await page.locator(".product").count()) === 100);
  check("header badge starts at 0", (await page.textContent("#cart-count")) === "0");

  await page.click("#product-book-1 button");
  await page.waitForURL(`${base}/cart`);
  await page.goto(`${base}/?kind=course`);
  await page.click("#product-course-1 button");
  await page.waitForURL(`${base}/cart`);
  await page.goto(`${base}/`);
  check("header badge shows 2", (await page.textContent("#cart-count")) === "2");

  await page.click("a.nav-cart");
  await page.waitForURL(`${base}/cart`);
  check("cart page has one <li> per line", (await page.locator("li").count()) === 2);
  await page.fill("#discount-code", "SUMMER25");
  await page.click("#apply-discount");
  await page.waitForURL(`${base}/cart`);
  const text = async (sel) => (await page.textContent(sel)).trim();
  // book 1 = 26.99, course 1 = 139.00: 165.99; 25% off = 41.50; 8% tax = 13.28; free shipping.
  check("subtotal", (await text("#subtotal")) === "$165.99", await text("#subtotal"));
  check("discount", (await text("#discount")) === "-$41.50", await text("#discount"));
  check("tax", (await text("#tax")) === "$13.28", await text("#tax"));
  check("shipping", (await text("#shipping")) === "$0.00", await text("#shipping"));
  check("total", (await text("#total")) === "$137.77", await text("#total"));
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
  }

  await page.click("#checkout");
  await page.waitForSelector("#confirmation");
  check("confirmation shown", (await text("#confirmation")) === "Thank you for your order!");
  check("order total", (await text("#order-total")) === "Total $137.77", await text("#order-total"));
  check("header badge back to 0", (await page.textContent("#cart-count")) === "0");
} catch (e) {
  failed += 1;
  console.log(`FAIL unexpected error: ${e}`);
} finally {
  await browser.close();
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
