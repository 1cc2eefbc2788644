// Small comforts only: the page works without this script.
document.addEventListener("DOMContentLoaded", () => {
  const count = document.querySelector("#selection .count");
  const boxes = () => Array.from(document.querySelectorAll('input[type=checkbox][form=selection]'));
  const update = () => {
    const n = boxes().filter(b => b.checked).length;
    boxes().forEach(b => b.closest(".tile").classList.toggle("picked", b.checked));
    if (count) count.textContent = n ? `${n} selected:` : "Tick pictures, then:";
  };
  boxes().forEach(b => b.addEventListener("change", update));
  update();
  document.querySelectorAll("form[data-confirm]").forEach(f =>
    f.addEventListener("submit", e => { if (!confirm(f.dataset.confirm)) e.preventDefault(); }));
});
