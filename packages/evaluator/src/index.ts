export { slidingWindowPerplexity } from './perplexity.js';
export type { PerplexityOptions, PerplexityResult } from './perplexity.js';
export { scoreContinuations, evaluateMultipleChoice, loadMultipleChoice, buildClozeTask, evaluateCloze } from './tasks.js';
export type { MultipleChoiceItem, ContinuationScore, ClozeItem } from './tasks.js';
export { depthDiagnostics } from './depth.js';
export { analyzeModel } from './analyze.js';
export type { AnalyzeOptions } from './analyze.js';
// The result types are the schema of an analysis report, declared in @deepen/core.
export type { AnalysisResult, LayerRemoval, DepthDiagnostics, LayerDepthStats, ClozeResult, MultipleChoiceResult } from '@deepen/core';
export { writeAnalysisReport } from './report.js';
export type { ReportEntry } from './report.js';
export { lineChart, heatmap } from './charts.js';
export type { Series } from './charts.js';
export { svgToPng } from './png.js';
