// End to end in a real browser: list -> add two products -> header badge shows 2 -> cart
// page -> apply SUMMER25 -> totals right -> checkout -> confirmation; then line options
// (coffee in two grinds, a gift-wrapped book), a quantity rule (a course at most once) and
// a price the admin changes after the add (the cart page says so; checkout charges it).
// The shop runs with ADMIN_PASSWORD=$ADMIN_PASSWORD (default e2e-admin).
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

  // Line options: the same coffee in two grinds is two lines; a gift wrap adds $2.00.
  await page.goto(`${base}/?kind=coffee`);
  await page.selectOption("#product-coffee-1 select[name='option.grind']", "espresso");
  await page.click("#product-coffee-1 button");
  await page.waitForURL(`${base}/cart`);
  await page.goto(`${base}/?kind=coffee`);
  await page.selectOption("#product-coffee-1 select[name='option.grind']", "filter");
  await page.click("#product-coffee-1 button");
  await page.waitForURL(`${base}/cart`);
  await page.goto(`${base}/?kind=book`);
  const bookPrice = Number((await page.textContent("#product-book-2 .price")).trim().slice(1));
  await page.check("#product-book-2 input[name='option.gift_wrap']");
  await page.click("#product-book-2 button");
  await page.waitForURL(`${base}/cart`);
  const options = await page.locator(".cart-item-options").allTextContents();
  check("two grinds are two lines", (await page.locator("li.cart-item").count()) === 3);
  check("the options are shown", options.join("|") === "(grind: espresso)|(grind: filter)|(gift_wrap: yes)", options.join("|"));
  const wrapped = (await page.locator("li.cart-item").nth(2).locator(".cart-item-total").textContent()).trim();
  check("the gift wrap costs 2.00 more", wrapped === `$${(bookPrice + 2).toFixed(2)}`, `${wrapped} for ${bookPrice}`);

  // A line changes by its key: the filter coffee to 3 bags.
  await page.locator("li.cart-item").nth(1).locator("input[name='quantity']").fill("3");
  await page.locator("li.cart-item").nth(1).locator("button", { hasText: "Update" }).click();
  await page.waitForURL(`${base}/cart`);
  check("the filter line has 3", (await page.locator("li.cart-item").nth(1).locator(".cart-item-quantity").textContent()) === "3");
  check("the espresso line still has 1", (await page.locator("li.cart-item").nth(0).locator(".cart-item-quantity").textContent()) === "1");

  // A quantity rule: a course is bought at most once.
  await page.goto(`${base}/?kind=course`);
  await page.click("#product-course-2 button");
  await page.waitForURL(`${base}/cart`);
  await page.goto(`${base}/?kind=course`);
  const refused = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/cart/add/course/2")),
    page.click("#product-course-2 button"),
  ]);
  check("a second course is refused with 400", refused[0].status() === 400, String(refused[0].status()));
  check("the refusal states the rule", (await page.content()).includes("cannot exceed 1"));
  await page.goto(`${base}/cart`);
  check("the course line still has 1", (await page.locator("li.cart-item").nth(3).locator(".cart-item-quantity").textContent()) === "1");

  // The admin raises the espresso coffee's price after the add.
  const admin = await browser.newContext({
    httpCredentials: { username: "admin", password: process.env.ADMIN_PASSWORD ?? "e2e-admin" },
  });
  const adminPage = await admin.newPage();
  await adminPage.goto(`${base}/admin/products?kind=coffee`);
  const before = await adminPage.inputValue("#coffee-1 input[name='price']");
  const raised = (Number(before) + 1).toFixed(2);
  await adminPage.fill("#coffee-1 input[name='price']", raised);
  await adminPage.click("#coffee-1 button");
  await adminPage.waitForLoadState();
  check("the admin saved the new price", (await adminPage.inputValue("#coffee-1 input[name='price']")) === raised);
  await admin.close();

  await page.goto(`${base}/cart`);
  const notices = await page.locator(".cart-item-price-change").allTextContents();
  check("the cart says the price went up", notices.length === 2 && notices.every((n) => n.includes(`price went up from $${before} to $${raised}`)), notices.join("|"));
  await page.click("#checkout");
  await page.waitForSelector("#confirmation");
  check("the order names both repriced lines", (await page.locator(".price-changes li").count()) === 2);
  check("checkout charged the new price", (await page.content()).includes(`$${raised}`));
} catch (e) {
  failed += 1;
  console.log(`FAIL unexpected error: ${e}`);
} finally {
  await browser.close();
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
