/* trustlive: small hand-written modules; htmx does most of the work. */

const csrfMeta = document.querySelector('meta[name="csrf-token"]');

// htmx requests ride on the session cookie, so they carry the CSRF token like forms do.
document.body.addEventListener("htmx:configRequest", (event) => {
  if (csrfMeta && csrfMeta.content) event.detail.headers["X-CSRF-Token"] = csrfMeta.content;
});

// Errors htmx does not swap in (an expired form, a lost connection) should not fail silently.
document.body.addEventListener("htmx:responseError", (event) => {
  const status = event.detail.xhr ? event.detail.xhr.status : 0;
  if (status === 401 || status === 403) window.location.reload();
  else event.detail.elt.classList.add("has-error");
});

/* Product page: pick one value per option; show that SKU's price and stock. The SKU table is
   the source of truth (it also works without JavaScript). */
function setUpPicker(picker) {
  const rows = [...document.querySelectorAll("tr[data-sku]")].map((row) => ({
    values: JSON.parse(row.dataset.values),
    price: row.dataset.price,
    stock: Number(row.dataset.stock),
    row,
  }));
  const out = picker.querySelector("[data-selected]");
  const labels = document.querySelector("[data-picker-labels]").dataset;
  const range = document.querySelector("[data-price-range]");
  const rangeText = range ? range.textContent : "";
  const count = picker.querySelectorAll("fieldset").length;
  // The buy box posts the chosen SKU: the chips fill its sku_id (a select, kept for no-JS use).
  const skuInputs = [...document.querySelectorAll("[data-sku-input]")];
  const choose = (id) => skuInputs.forEach((input) => { input.value = id; });
  skuInputs.filter((input) => input.tagName === "SELECT").forEach((select) => {
    select.required = false;
    select.closest("[data-sku-choice]").hidden = true;
    const earlier = rows.find((r) => r.row.dataset.sku === select.value);  // a re-rendered form
    if (earlier) earlier.values.forEach((value, i) => {
      picker.querySelectorAll(`input[data-index="${i}"]`).forEach((radio) => {
        if (radio.value === value) radio.checked = true;
      });
    });
  });

  function update() {
    const chosen = [];
    picker.querySelectorAll("input[type=radio]:checked").forEach((input) => {
      chosen[Number(input.dataset.index)] = input.value;
    });
    rows.forEach((r) => r.row.classList.remove("picked"));
    if (chosen.filter((v) => v !== undefined).length < count) return choose("");
    const sku = rows.find((r) => r.values.every((v, i) => v === chosen[i]));
    if (!sku) {
      out.textContent = labels.labelNone;
      if (range) range.textContent = rangeText;
      return choose("");
    }
    choose(sku.row.dataset.sku);
    out.classList.remove("attention");
    sku.row.classList.add("picked");
    if (range) range.textContent = sku.price;
    out.textContent = sku.stock > 0 ? labels.labelStock.replace("{n}", sku.stock) : labels.labelSoldout;
  }

  picker.addEventListener("change", update);
  update();
}

document.querySelectorAll("[data-sku-picker]").forEach(setUpPicker);

// Buy now / add to cart without a complete choice: point at the options instead of posting.
document.querySelectorAll("[data-buy-form]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    const input = form.querySelector("[data-sku-input]");
    const out = document.querySelector("[data-selected]");
    if (input && !input.value && out) {
      event.preventDefault();
      out.classList.add("attention");
      out.scrollIntoView({ block: "center", behavior: "smooth" });
    }
  });
});
