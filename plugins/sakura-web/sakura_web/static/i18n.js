// Interface texts in Chinese (the default) and English; the choice is kept in localStorage.

const STORAGE_KEY = "sakura.lang";

const TEXTS = {
  title: ["sakura 翻译工作台", "sakura translation workbench"],
  "lang.switch": ["English", "中文"],
  "lang.switch.label": ["Switch the interface to English", "切换到中文界面"],
  "tabs.label": ["工作台视图", "Workbench views"],
  "tab.translate": ["翻译文本", "Translate text"],
  "tab.glossary": ["术语表", "Glossary"],
  "tab.files": ["翻译文件", "Translate files"],
  "tab.proofread": ["校对", "Proofread"],
  "tab.server": ["服务器", "Server"],
  "model.loading": ["正在读取模型信息…", "Reading the model's details…"],
  "model.line": ["模型 {name} · 版本 {version} · 提示格式 {format} · 并行 {parallelism}", "Model {name} · version {version} · prompt format {format} · {parallelism} slots"],
  "model.unknown": ["未知", "unknown"],
  "translate.source": ["日文原文", "Japanese text"],
  "translate.source.placeholder": ["在此粘贴日文，每行一句…", "Paste Japanese here, one sentence a line…"],
  "translate.output": ["逐行对照", "Line by line"],
  "translate.col.source": ["原文", "Source"],
  "translate.col.target": ["译文", "Translation"],
  "translate.preset": ["采样预设", "Sampling preset"],
  "translate.advanced": ["高级设置", "Advanced settings"],
  "translate.temperature": ["温度 temperature", "Temperature"],
  "translate.top_p": ["top_p", "top_p"],
  "translate.frequency_penalty": ["频率惩罚 frequency_penalty", "Frequency penalty"],
  "translate.max_tokens": ["最大生成长度 max_tokens", "Max tokens"],
  "translate.go": ["翻译", "Translate"],
  "translate.stop": ["停止", "Stop"],
  "translate.copy": ["复制译文", "Copy translation"],
  "translate.download": ["下载译文", "Download translation"],
  "translate.glossary.hits": ["本次使用术语 {n} 条", "{n} glossary entries used"],
  "translate.empty": ["请先输入要翻译的日文。", "Type or paste some Japanese first."],
  "translate.running": ["正在翻译…", "Translating…"],
  "translate.done": ["翻译完成：{prompt} 个提示 token（缓存 {cached}），生成 {completion} 个 token。", "Done: {prompt} prompt tokens ({cached} cached), {completion} generated."],
  "translate.length": ["（部分译文达到长度上限，已截断）", "(some output hit the length limit and was cut)"],
  "translate.stopped": ["已停止。", "Stopped."],
  "translate.copied": ["译文已复制。", "Translation copied."],
  "glossary.add": ["添加一行", "Add a row"],
  "glossary.import": ["导入术语表", "Import a glossary"],
  "glossary.export": ["导出", "Export"],
  "glossary.export.format": ["导出格式", "Export format"],
  "glossary.format.sakura": ["Sakura（原文->译文 #注释）", "Sakura (src->dst #note)"],
  "glossary.format.galtransl": ["GalTransl（制表符分隔）", "GalTransl (tab separated)"],
  "glossary.format.fishhawk": ["轻小说机翻机器人 JSON（{\"原文\": \"译文\"}）", "books.fishhawk.top JSON ({\"src\": \"dst\"})"],
  "glossary.format.list": ["JSON 列表（src, dst, info）", "JSON list (src, dst, info)"],
  "glossary.clear": ["清空", "Clear all"],
  "glossary.col.src": ["原文", "Source"],
  "glossary.col.dst": ["译文", "Target"],
  "glossary.col.note": ["注释", "Note"],
  "glossary.col.actions": ["操作", "Actions"],
  "glossary.delete": ["删除", "Delete"],
  "glossary.row.src": ["第 {n} 行原文", "Row {n} source"],
  "glossary.row.dst": ["第 {n} 行译文", "Row {n} target"],
  "glossary.row.note": ["第 {n} 行注释", "Row {n} note"],
  "glossary.row.delete": ["删除第 {n} 行", "Delete row {n}"],
  "glossary.count": ["共 {n} 条术语，保存在本浏览器中。", "{n} entries, kept in this browser."],
  "glossary.imported": ["已从 {file} 导入 {n} 条术语。", "Imported {n} entries from {file}."],
  "glossary.import.failed": ["导入失败：{error}", "Import failed: {error}"],
  "glossary.hint": ["翻译时只发送原文中出现的术语（与 sakura translate 相同）。", "Only entries whose source occurs in the text are sent (as sakura translate does)."],
  "files.drop": ["把文件拖到这里，或点击选择文件", "Drop files here, or click to pick them"],
  "files.pick": ["选择文件", "Pick files"],
  "files.formats": ["支持的格式：{formats}", "Formats: {formats}"],
  "files.chunk": ["每块字数 chunk_chars", "Characters per chunk"],
  "files.context": ["上下文", "Context"],
  "files.context.translation": ["前文的译文", "Previous translation"],
  "files.context.source": ["前文的原文", "Previous source"],
  "files.context.none": ["不带上下文", "None"],
  "files.settings.hint": ["采样预设与高级设置沿用“翻译文本”页，术语表沿用“术语表”页。", "Sampling comes from the Translate text view, the glossary from the Glossary view."],
  "files.jobs": ["任务队列", "Jobs"],
  "files.none": ["还没有任务。", "No jobs yet."],
  "files.refresh": ["刷新列表", "Refresh"],
  "files.cancel": ["取消", "Cancel"],
  "files.remove": ["移除", "Remove"],
  "files.download": ["下载结果", "Download result"],
  "files.proofread": ["校对", "Proofread"],
  "files.progress": ["{done}/{total} 块", "{done}/{total} chunks"],
  "files.speed": ["{speed} 字/秒", "{speed} chars/s"],
  "files.left": ["剩余 {time}", "{time} left"],
  "files.flagged": ["{n} 行待检查", "{n} lines flagged"],
  "files.uploaded": ["已加入队列：{name}", "Queued: {name}"],
  "files.upload.failed": ["{name} 上传失败：{error}", "{name} was not queued: {error}"],
  "state.queued": ["排队中", "queued"],
  "state.running": ["翻译中", "running"],
  "state.done": ["已完成", "done"],
  "state.failed": ["失败", "failed"],
  "state.cancelled": ["已取消", "cancelled"],
  "proofread.job": ["选择任务", "Job"],
  "proofread.pick": ["（请选择任务）", "(pick a job)"],
  "proofread.reload": ["重新载入", "Reload"],
  "proofread.only.flagged": ["只看有标记的块", "Only flagged chunks"],
  "proofread.chunk": ["第 {n} 块", "Chunk {n}"],
  "proofread.edited": ["（已手动修改）", "(edited by hand)"],
  "proofread.line": ["第 {n} 行译文", "Line {n} translation"],
  "proofread.save": ["保存修改", "Save edits"],
  "proofread.retranslate": ["重新翻译此块", "Translate this chunk again"],
  "proofread.saved": ["第 {n} 块已保存。", "Chunk {n} saved."],
  "proofread.retranslated": ["第 {n} 块已重新翻译。", "Chunk {n} translated again."],
  "proofread.empty": ["这个任务没有可显示的块。", "This job has no chunks to show."],
  "proofread.summary": ["{chunks} 块，{flags} 处标记", "{chunks} chunks, {flags} flags"],
  "flag.line_count": ["行数不符", "line count"],
  "flag.kana": ["残留假名", "kana left"],
  "flag.hangul": ["出现韩文", "hangul"],
  "flag.degeneration": ["重复退化", "degeneration"],
  "flag.untranslated": ["未翻译", "untranslated"],
  "flag.glossary": ["术语未用", "glossary term missed"],
  "flag.markup": ["标记丢失", "markup lost"],
  "flag.context_overflow": ["超出上下文", "context overflow"],
  "server.health": ["状态", "Health"],
  "server.slots": ["槽位（忙/空闲）", "Slots (busy/idle)"],
  "server.queue": ["排队请求", "Queued requests"],
  "server.tps": ["生成速度", "Generation speed"],
  "server.tps.value": ["{n} token/秒", "{n} tokens/s"],
  "server.cached": ["缓存命中的提示 token", "Cached prompt tokens"],
  "server.prompt": ["提示 token 总数", "Prompt tokens"],
  "server.completion": ["生成 token 总数", "Generated tokens"],
  "server.requests": ["请求总数", "Requests"],
  "server.slot.table": ["各槽位", "Slots"],
  "server.slot.id": ["槽位", "Slot"],
  "server.slot.state": ["状态", "State"],
  "server.slot.ctx": ["上下文", "Context"],
  "server.slot.cached": ["已缓存 token", "Cached tokens"],
  "server.slot.busy": ["忙", "busy"],
  "server.slot.idle": ["空闲", "idle"],
  "server.updated": ["更新于 {time}（仅在此页可见时每 3 秒刷新）", "Updated {time} (every 3 s while this view is visible)"],
  "auth.title": ["需要 API 密钥", "API key needed"],
  "auth.text": ["服务器要求认证。请输入启动 sakura run 时设置的密钥（--api-key）。", "The server requires authentication. Enter the key sakura run was started with (--api-key)."],
  "auth.user": ["用户名（--auth）", "User (--auth)"],
  "auth.key": ["API 密钥或密码", "API key or password"],
  "auth.remember": ["在本浏览器中记住", "Remember in this browser"],
  "auth.submit": ["确定", "OK"],
  "auth.wrong": ["密钥不正确，请重试。", "That key was refused; try again."],
  "error.generic": ["出错了：{error}", "Error: {error}"],
};

let lang = "zh";

/** The interface language: "zh" or "en". */
export function currentLang() {
  return lang;
}

/** The text for ``key`` in the current language, with {name} placeholders filled from ``values``. */
export function t(key, values = {}) {
  const pair = TEXTS[key];
  const text = pair ? pair[lang === "en" ? 1 : 0] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** Fill every element marked with data-i18n (its text) and data-i18n-attr ("attr:key;attr:key"). */
export function applyTexts(root = document) {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of element.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      element.setAttribute(attr.trim(), t(key.trim()));
    }
  }
  document.title = t("title");
}

/** Read the kept choice (Chinese unless English was chosen). */
export function loadLang() {
  lang = localStorage.getItem(STORAGE_KEY) === "en" ? "en" : "zh";
  return lang;
}

/** Switch and keep the choice; listeners of "sakura:lang" re-render their dynamic parts. */
export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem(STORAGE_KEY, lang);
  applyTexts();
  document.dispatchEvent(new CustomEvent("sakura:lang"));
}
